"""A grid run under misuse and faults: two sessions of one run, the parent killed or
terminated, run identity from content (the manifest lost, the data file replaced,
harmless spellings), unwritable folders."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from experiments.cli import main as cli_main
from experiments.grid import run_grid
from experiments.grid.config import GridConfig
from experiments.grid.lock import RunLock
from experiments.grid.store import read_cells, read_manifest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(tmp_path, **kw) -> GridConfig:
    values = dict(frameworks=("scratch",), limit=50, etas=(0.1, 0.01), lmbdas=(0.0,), epochs=1, batch_size=10,
                  dtype="float64", executor="serial", out=str(tmp_path), run="r")
    values.update(kw)
    return GridConfig(**values)


def run(config, **kw):
    return run_grid(config, progress=False, figures=False, echo=kw.pop("echo", lambda text: None), **kw)


def cli(argv, capsys):
    capsys.readouterr()
    rc = cli_main(argv)
    return rc, capsys.readouterr().err.strip().splitlines()


def slow_run(tmp_path, *extra):
    """``xfw grid`` in a child process, long enough to be caught running (8 cells of 300 epochs)."""
    argv = [sys.executable, "-m", "experiments.cli", "grid", "--frameworks", "scratch", "--limit", "100",
            "--epochs", "300", "--eta", "0.1", "0.05", "0.02", "0.01", "--lmbda", "0", "1e-4", "--batch-size", "10",
            "--dtype", "float64", "--out", str(tmp_path), "--run", "slow", "--no-figures", "--no-progress", *extra]
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def workers_of(proc, n):
    assert wait_for(lambda: len(psutil.Process(proc.pid).children()) >= n), "the workers never started"
    return psutil.Process(proc.pid).children()


def slow_args(tmp_path):
    return ["grid", "--frameworks", "scratch", "--limit", "100", "--epochs", "300", "--eta", "0.1", "0.05", "0.02",
            "0.01", "--lmbda", "0", "1e-4", "--batch-size", "10", "--dtype", "float64", "--out", str(tmp_path),
            "--run", "slow", "--no-figures", "--no-progress"]


# --------------------------------------------------------------------------- one session per run


def test_a_second_session_of_a_run_exits_2_at_once(tmp_path, capsys):
    proc = slow_run(tmp_path, "--executor", "serial")
    try:
        assert wait_for(lambda: os.path.exists(tmp_path / "slow" / ".lock.json"))
        start = time.monotonic()
        rc, err = cli(slow_args(tmp_path), capsys)
        assert time.monotonic() - start < 10
        assert rc == 2 and len(err) == 1, err
        assert err[0].startswith(f"xfw: error: --run: the run 'slow' in {tmp_path / 'slow'} is in use by pid "
                                 f"{proc.pid} on "), err[0]
        assert proc.poll() is None  # the first session goes on undisturbed
    finally:
        proc.kill()
        proc.wait(30)


def test_a_lock_left_by_a_dead_session_is_taken_over(tmp_path):
    config = tiny(tmp_path)
    os.makedirs(config.run_dir)
    with open(os.path.join(config.run_dir, ".lock.json"), "w") as fh:
        json.dump({"pid": 2 ** 22 + 12345, "host": "elsewhere", "started": "yesterday"}, fh)
    said = []
    assert run(config, echo=said.append).ok == 2
    assert any("taking the run over from pid 4206649 on elsewhere since yesterday" in line for line in said)
    assert not os.path.exists(os.path.join(config.run_dir, ".lock.json"))  # released at the end


def test_a_held_lock_refuses_in_process_too(tmp_path):
    config = tiny(tmp_path)
    with RunLock(config.run_dir, "r"):
        with pytest.raises(ValueError, match=rf"is in use by pid {os.getpid()} on "):
            run(config)
    assert run(config).ok == 2


# --------------------------------------------------------------------------- the parent killed


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_end_with_their_parent_and_the_run_resumes(sig, tmp_path):
    proc = slow_run(tmp_path, "--executor", "process", "--workers", "2")
    try:
        workers = workers_of(proc, 2)
        proc.send_signal(sig)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    def running(p):  # a zombie has ended: only its reaping is left (to whoever adopted it)
        try:
            return p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    wait_for(lambda: not any(running(p) for p in workers), timeout=10)
    alive = [p for p in workers if running(p)]
    for p in alive:
        p.kill()
    assert not alive, f"workers outlived their parent: {alive}"
    manifest = read_manifest(tmp_path / "slow")
    if sig == signal.SIGTERM:
        assert rc == 143 and manifest["status"] == "interrupted"
        assert manifest["sessions"][-1]["status"] == "interrupted"
        assert "terminated;" in proc.stderr.read()
    else:
        assert rc == -signal.SIGKILL and manifest["sessions"][-1]["status"] == "running"
        # The next session takes the run over and records that the killed one ended.
        config = GridConfig(frameworks=("scratch",), limit=100, epochs=300, etas=(0.1, 0.05, 0.02, 0.01),
                            lmbdas=(0.0, 1e-4), batch_size=10, dtype="float64", executor="serial",
                            out=str(tmp_path), run="slow")
        with pytest.raises(KeyboardInterrupt):
            run(config, on_cell_done=lambda row: (_ for _ in ()).throw(KeyboardInterrupt))
        sessions = read_manifest(tmp_path / "slow")["sessions"]
        assert [s["status"] for s in sessions] == ["killed", "interrupted"]


# --------------------------------------------------------------------------- identity from content


def test_cells_of_another_config_are_never_reused_without_a_manifest(tmp_path, capsys):
    config = tiny(tmp_path, epochs=2)
    run(config)
    os.remove(os.path.join(config.run_dir, "manifest.json"))
    with pytest.raises(ValueError, match=r"cells.csv holds 2 cells not made with this configuration .*"
                                         r"manifest.json is missing"):
        run(tiny(tmp_path, epochs=1))
    assert run(config).skipped == 2  # the same config still finds its cells


def test_harmless_differences_are_not_changes(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (60, 28, 28), dtype=np.uint8), y_train=rng.integers(0, 10, 60),
                  x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 20))
    np.savez(tmp_path / "mnist.npz", **arrays)
    monkeypatch.chdir(tmp_path)
    base = dict(dataset="mnist", arch="lenet", limit=30, batch_size=10, out="results")
    run(tiny(tmp_path, data="./mnist.npz", **base))
    again = tiny(tmp_path, data="mnist.npz", etas=(0.01, 0.1), **base)  # another spelling, another order
    assert run(again).skipped == 2
    np.savez(tmp_path / "mnist.npz", **{**arrays, "y_train": (arrays["y_train"] + 1) % 10})  # other data, same path
    with pytest.raises(ValueError, match=r"another configuration \(data_sha256: "):
        run(again)
    assert len(read_cells(again.run_dir)) == 2


# --------------------------------------------------------------------------- files that cannot be written


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_folder_is_one_line(tmp_path, capsys):
    os.chmod(tmp_path, 0o555)
    try:
        rc, err = cli(["grid", "--frameworks", "scratch", "--limit", "50", "--epochs", "1", "--eta", "0.1", "--lmbda",
                       "0", "--batch-size", "10", "--executor", "serial", "--out", str(tmp_path / "x"),
                       "--no-progress"], capsys)
    finally:
        os.chmod(tmp_path, 0o755)
    assert rc == 2 and len(err) == 1 and err[0].startswith("xfw: error: --out: cannot write"), err


def test_unwritable_mid_run_is_one_line_and_keeps_what_finished(tmp_path, capsys, monkeypatch):
    from experiments.grid import store

    config = tiny(tmp_path, etas=(0.1, 0.01, 0.001))
    real = store.atomic_write
    calls = []

    def fail_on_second_cell(path, text):
        if str(path).endswith("cells.csv"):
            calls.append(path)
            if len(calls) == 2:
                raise PermissionError(13, "Permission denied", str(path))
        return real(path, text)

    monkeypatch.setattr(store, "atomic_write", fail_on_second_cell)
    with pytest.raises(ValueError, match=r"^cannot write .*cells.csv: Permission denied; 1 of 3 cells are done"):
        run(config)
    monkeypatch.setattr(store, "atomic_write", real)
    assert read_manifest(config.run_dir)["status"] == "interrupted"
    assert run(config).skipped == 1
