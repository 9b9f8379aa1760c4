"""The grid benchmark: the whole default grid against Keras alone the course's way.

``xfw bench --grid`` runs :func:`bench_grid`: the grid of every installed framework on
one executor, then, in a fresh process with Keras's default threading,
:func:`course_keras_baseline` (what the course does: a new ``keras.Sequential``,
``compile`` and ``model.fit`` per cell), and prints both times and their ratio. ``xfw bench --lenet`` runs :func:`bench_lenet_grid`:
the lenet grid on 28x28 synthetic data, population against process executor, with
the peak memory.
"""
from __future__ import annotations

import os
import sys
import time

from ..grid.config import DEFAULT_GRID, GridConfig
from ..grid.run import run_grid
from ..grid.store import read_cells
from ..grid.cells import one_line
from ..runtime import FRAMEWORKS, available, import_framework

def course_keras_baseline(*, epochs=100, etas=DEFAULT_GRID, lmbdas=DEFAULT_GRID, batch_size=100) -> float:
    """Seconds for Keras alone run the course's way: in this process, for each cell a new
    ``keras.Sequential`` (Conv2D(10, 3x3, relu, l2), MaxPooling2D, Flatten, Dense(50, relu,
    l2), Dense(10, softmax, l2)), ``SGD(learning_rate=eta)``, ``compile``, ``model.fit(X, Y,
    epochs, batch_size, verbose=0)`` and one ``evaluate`` on the test set. Float32 NHWC
    digits, the same split as the grid. Keras's default threading (the course sets none).

    The convolution is ``valid`` like the registry's ``course_cnn`` (the course's Keras
    example writes ``same``), so both sides train the same network.
    """
    import_framework("keras")  # sets Keras's environment, torch first
    import keras
    from keras import layers, regularizers

    from .. import datasets

    data = datasets.digits(dtype="float32")
    x, xt = data.x_train.transpose(0, 2, 3, 1), data.x_test.transpose(0, 2, 3, 1)
    y, yt = keras.utils.to_categorical(data.y_train, 10), keras.utils.to_categorical(data.y_test, 10)
    start = time.perf_counter()
    for eta in etas:
        for lmbd in lmbdas:
            model = keras.Sequential([
                keras.Input(shape=x.shape[1:]),
                layers.Conv2D(10, (3, 3), activation="relu", kernel_regularizer=regularizers.l2(lmbd)),
                layers.MaxPooling2D(pool_size=(2, 2)),
                layers.Flatten(),
                layers.Dense(50, activation="relu", kernel_regularizer=regularizers.l2(lmbd)),
                layers.Dense(10, activation="softmax", kernel_regularizer=regularizers.l2(lmbd)),
            ])
            model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(learning_rate=eta),
                          metrics=["accuracy"])
            model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
            model.evaluate(xt, yt, verbose=0)
    return time.perf_counter() - start


def _baseline_in_subprocess(epochs, etas, lmbdas) -> float:
    """:func:`course_keras_baseline` in a fresh interpreter with default threading."""
    import json
    import subprocess

    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    code = ("import json, sys; from experiments.bench.grid import course_keras_baseline as f; "
            "a = json.loads(sys.argv[1]); print('SECONDS', f(**a))")
    args = json.dumps({"epochs": epochs, "etas": list(etas), "lmbdas": list(lmbdas)})
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-c", code, args], env=env, cwd=root, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("SECONDS "):
            return float(line.split()[1])
    raise RuntimeError(f"the Keras baseline failed (exit {proc.returncode}): {one_line(proc.stderr[-2000:])}")


def _run_timed(config, progress):
    """(wall seconds, summary, seconds inside the cells per framework) of one grid run."""
    start = time.perf_counter()
    summary = run_grid(config, progress=progress, figures=False, echo=lambda text: None)
    wall = time.perf_counter() - start
    per_fw = read_cells(config.run_dir).groupby("framework", sort=False).seconds.sum()
    return wall, summary, per_fw


def _children_peak_bytes() -> int:
    """The largest resident set of any finished child process so far (workers, baseline)."""
    import resource

    kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return int(kib) * 1024


def bench_grid(*, epochs=100, etas=DEFAULT_GRID, lmbdas=DEFAULT_GRID, frameworks=FRAMEWORKS,
               executors=("population", "process"), workers=None, dtype="float32", train_eval="every",
               baseline=True, out=None, progress=True, data=None) -> dict:
    """Time the grid of ``frameworks`` on each of ``executors`` (defaults: the full default
    grid, 49 cells x 3 frameworks x 100 epochs on digits, with the population executor and
    the process executor), then Keras alone the course's way (:func:`course_keras_baseline`,
    in a fresh process); print the times, their ratios and the peak memory of the workers.

    The population executor's grid is timed again after Keras alone, and its ratio uses
    the mean of the two: this machine's speed drifts over the minutes the baseline takes
    (by a fifth and more), and the mean cancels a steady drift. The peak is
    ``getrusage(RUSAGE_CHILDREN).ru_maxrss``: the largest worker of the runs
    so far, so each run's figure is measured right after it (population first). The grid
    runs go to a temporary folder (``out`` keeps them). ``data``: GridConfig fields that
    choose another network and data set (:func:`bench_lenet_grid`). Returns the times and
    the ratios.
    """
    data = dict(data or {})
    what = (f"{data['arch']} on {data['dataset']} {'x'.join(map(str, data['input_shape'][1:]))}"
            f" ({data['limit']} samples)") if data else "digits"
    import tempfile

    frameworks = available(frameworks)
    skipped = sorted(set(FRAMEWORKS) - set(frameworks))
    result = {"frameworks": frameworks, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="xfw-bench-grid-") as tmp:
        def timed(executor, run):
            config = GridConfig(frameworks=frameworks, etas=tuple(etas), lmbdas=tuple(lmbdas), epochs=epochs,
                                executor=executor, workers=workers, dtype=dtype, train_eval=train_eval,
                                out=out or tmp, run=run, **data)
            n = config.n_cells()
            print(f"\ngrid: {len(config.etas)} eta x {len(config.lmbdas)} lambda x {len(frameworks)} frameworks "
                  f"({', '.join(frameworks)}) = {n} cells x {epochs} epochs on {what}, {dtype}, "
                  f"executor {executor} ({1 if executor == 'serial' else config.n_workers} workers), "
                  "train evaluation " + ("every epoch" if train_eval == "every" else "after the last epoch")
                  + (f"; not installed: {', '.join(skipped)}" if skipped else ""), flush=True)
            wall, summary, per_fw = _run_timed(config, progress)
            peak = _children_peak_bytes()
            print(f"grid ({executor}): {wall:.1f} s for {n} cells ({summary.ok} ok, {summary.diverged} diverged, "
                  f"{summary.failed} failed); seconds inside the cells: "
                  + ", ".join(f"{fw} {s:.0f}" for fw, s in per_fw.items())
                  + f"; peak worker memory so far {peak / 2**30:.2f} GiB", flush=True)
            return {"seconds": wall, "cells": n, "summary": summary, "peak_bytes": peak,
                    "cell_seconds": {fw: float(s) for fw, s in per_fw.items()}}

        for executor in executors:
            result["runs"][executor] = timed(executor, f"bench-grid-{executor}")
        runs = result["runs"]
        if "population" in runs and "process" in runs:
            ratio = runs["population"]["seconds"] / runs["process"]["seconds"]
            print(f"population / process executor: {ratio:.2f}")
            result["population_vs_process"] = ratio
        if baseline and "keras" in available(("keras",)):
            print(f"course's way: Keras alone, model.fit per cell in one process, {len(etas) * len(lmbdas)} "
                  f"cells x {epochs} epochs ...", flush=True)
            keras_s = _baseline_in_subprocess(epochs, etas, lmbdas)
            print(f"course's way (Keras alone): {keras_s:.1f} s")
            result["keras_seconds"] = keras_s
            if "population" in runs:  # timed again: the mean of before and after cancels a drift
                again = timed("population", "bench-grid-population-after")
                runs["population"]["seconds_before_after"] = (runs["population"]["seconds"], again["seconds"])
                runs["population"]["seconds"] = (runs["population"]["seconds"] + again["seconds"]) / 2
                print(f"population executor, mean of before and after Keras alone: "
                      f"{runs['population']['seconds']:.1f} s")
            for executor, r in runs.items():
                r["ratio"] = r["seconds"] / keras_s
                print(f"all {len(frameworks)} frameworks, {executor} executor: {r['seconds']:.1f} s = "
                      f"{r['ratio']:.2f} x the course's Keras time (target <= 0.1)")
        elif baseline:
            print("course's way: skipped (keras is not installed)")
    return result


#: The lenet benchmark grid: 28x28 synthetic samples, fewer epochs than the digits grid.
LENET_GRID = {"arch": "lenet", "dataset": "synthetic", "input_shape": (1, 28, 28), "limit": 1000}
LENET_EPOCHS = 10


def bench_lenet_grid(*, epochs=LENET_EPOCHS, progress=True, **kwargs) -> dict:
    """The lenet grid (49 cells x every installed framework, :data:`LENET_GRID`) with the
    population and the process executors: their times, ratio and peak worker memory
    (the population is cut into chunks that fit :data:`experiments.grid.population.MEMORY_BUDGET`)."""
    return bench_grid(epochs=epochs, baseline=False, progress=progress, data=LENET_GRID, **kwargs)
