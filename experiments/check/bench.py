"""Speed of the checks (a benchmark, not a test): ``python -m experiments.check.bench``.

Prints the seconds of one layer check once the frameworks are imported (median of 5),
of one failing layer check with its diagnosis (and with a layout inferred), and of
``xfw check`` on a generated file of ten checks, in a fresh process, imports included.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

TEN_CHECKS = '''
import numpy as np
from experiments import check
from scratch import spec as S

rng = np.random.default_rng(0)
K = rng.normal(0, 0.5, (2, 1, 3, 3))


def _conv(x):
    out = np.zeros((x.shape[0], 2, x.shape[2] - 2, x.shape[3] - 2))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", x[:, :, i:i + out.shape[2], j:j + out.shape[3]], K[:, :, i, j])
    return out
''' + "".join(f'''

def check_{i}():
    return check.layer(S.Conv2D(2, 3), input_shape=(1, 6, {6 + i}), forward=_conv,
                       params={{"kernel": (lambda: K, "out in kh kw")}})
''' for i in range(10))


def one_layer_check() -> float:
    """Seconds of one check.layer (a loop-style conv with backward), frameworks warm."""
    from experiments import check
    from scratch import spec as S

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))
    from students.conv import LoopConv

    def run():
        conv = LoopConv()
        return check.layer(S.Conv2D(2, 3, activation="relu"), input_shape=(1, 6, 6), forward=conv.forward,
                           backward=conv.backward, input_layout="h w", output_layout="h w c",
                           params={"kernel": (lambda: conv.K, "(kh kw) out")}, grads={"kernel": lambda: conv.dK})

    run()  # imports the frameworks, builds and caches the models
    times = []
    for _ in range(5):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def one_failing_layer_check() -> tuple:
    """Seconds of one FAILING check.layer, diagnosis included (relu'(0) taken as 1, named
    ``activation-derivative-at-zero``), frameworks warm; and the id it names first."""
    from experiments import check
    from scratch import spec as S

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))
    from students.conv import LoopConv

    def run(layout="(kh kw) out"):
        conv = LoopConv(bug="relu-derivative-at-zero")
        kernel = (lambda: conv.K, layout) if layout else (lambda: conv.K)
        return check.layer(S.Conv2D(2, 3, activation="relu"), input_shape=(1, 6, 6), forward=conv.forward,
                           backward=conv.backward, input_layout="h w", output_layout="h w c",
                           params={"kernel": kernel}, grads={"kernel": lambda: conv.dK})

    report = run()
    if report.passed or not report.diagnoses:
        raise RuntimeError(f"the failing check passed or named nothing:\n{report}")
    times = []
    for _ in range(5):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    left_out = []
    for _ in range(5):
        t = time.perf_counter()
        inferred = run(layout=None)
        left_out.append(time.perf_counter() - t)
    if [d.id for d in inferred.diagnoses[:2]] != ["convention", report.diagnoses[0].id]:
        raise RuntimeError(f"the kernel layout was not inferred:\n{inferred}")
    return statistics.median(times), report.diagnoses[0].id, statistics.median(left_out)


def ten_checks_file() -> float:
    """Seconds of ``xfw check`` on a file of ten layer checks, in a new process."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ten.py")
        with open(path, "w") as f:
            f.write(TEN_CHECKS)
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "experiments.cli", "check", path], capture_output=True, text=True)
        seconds = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"xfw check exited {r.returncode}: {r.stdout[-500:]} {r.stderr[-500:]}")
    return seconds


def main() -> int:
    one = one_layer_check()
    print(f"one layer check (frameworks imported, median of 5): {one:.3f} s (target < 2 s, ratio {one / 2:.2f})")
    fail, named, inferred = one_failing_layer_check()
    print(f"one failing layer check, diagnosis included ({named}), median of 5: {fail:.3f} s "
          f"(target < 5 s, ratio {fail / 5:.2f}; {fail / one:.1f}x a passing check)")
    print(f"the same with the kernel layout left out (inferred, check re-run), median of 5: {inferred:.3f} s "
          f"(target < 5 s, ratio {inferred / 5:.2f}; {inferred / one:.1f}x a passing check)")
    ten = ten_checks_file()
    print(f"xfw check on a file of ten checks, imports included: {ten:.1f} s (target < 15 s, ratio {ten / 15:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
