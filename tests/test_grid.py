"""The grid runner: executors agree, resume loses and repeats nothing, divergence and
failure are results, MNIST from a file, refusal of a changed config, one-line errors.

Small grids (2x2, 2 epochs, 200 digits) keep this file fast; the process and Dask
executors pay for starting their workers once per run.
"""
import importlib
import multiprocessing
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from experiments.cli import main as cli_main
from experiments.cli.main import build_parser
from experiments.grid.config import DEFAULT_GRID, GridConfig
from experiments.grid import GridAborted, GridInterrupted, cell_tasks, run_grid
from experiments.grid.store import CELL_COLUMNS, CURVE_COLUMNS, read_cells, read_curves, read_manifest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _trainer_missing(package):
    """None when ``package.Trainer`` imports, else the reason to skip."""
    try:
        module = importlib.import_module(package)
    except Exception as e:  # noqa: BLE001  not written yet, or broken at import
        return f"{package} does not import ({type(e).__name__}: {e})"
    if not hasattr(module, "Trainer"):
        return f"{package} has no Trainer yet"
    return None


MISSING = {"scratch": None, "keras": _trainer_missing("keras_models"), "torch": _trainer_missing("torch_models")}
AVAILABLE = tuple(fw for fw, why in MISSING.items() if why is None)
FRAMEWORK_PARAMS = [pytest.param(fw, marks=pytest.mark.skipif(bool(why), reason=why or ""), id=fw)
                    for fw, why in MISSING.items()]


def tiny(tmp_path, **kw) -> GridConfig:
    """A 2x2 grid, 2 epochs, 200 digits (160 train / 40 test), float64, scratch, serial."""
    values = dict(arch="course_cnn", dataset="digits", limit=200, frameworks=("scratch",), etas=(0.1, 0.01),
                  lmbdas=(1e-4, 1e-2), epochs=2, batch_size=20, seeds=(0,), dtype="float64",
                  executor="serial", workers=2, out=str(tmp_path), run="tiny")
    values.update(kw)
    return GridConfig(**values)


def table(run_dir, what="cells"):
    """The run's cells (without the timing) or curves, sorted by key, for exact comparisons."""
    if what == "cells":
        df = read_cells(run_dir).drop(columns=["seconds", "config_hash"])  # runs of other configs compared
        keys = ["framework", "eta", "lmbda", "seed"]
    else:
        df = read_curves(run_dir)
        keys = ["framework", "eta", "lmbda", "seed", "epoch"]
    return df.sort_values(keys).reset_index(drop=True)


def run(config, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("figures", False)
    kw.setdefault("echo", lambda text: None)
    return run_grid(config, **kw)


# --------------------------------------------------------------------------- executors


@pytest.fixture(scope="module")
def dask_cluster():
    """One Dask LocalCluster (2 workers, 1 thread each) shared by the module's tests."""
    distributed = pytest.importorskip("distributed")
    from experiments.runtime import one_thread_environment

    one_thread_environment()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       silence_logs=40)
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The 2x2 grid of every available framework, run serially: the numbers to match.

    Run by the CLI in a fresh process, as a user runs it: this test process may hold a
    TensorFlow that other tests initialised with several threads, which the grid can
    no longer limit to one (Keras's running loss would then differ in the last bits).
    """
    out = tmp_path_factory.mktemp("reference")
    config = tiny(out, frameworks=AVAILABLE, dtype="float32")
    argv = [sys.executable, "-m", "experiments.cli", "grid", "--frameworks", *config.frameworks,
            "--limit", str(config.limit), "--eta", *map(repr, config.etas), "--lmbda", *map(repr, config.lmbdas),
            "--epochs", str(config.epochs), "--batch-size", str(config.batch_size), "--dtype", config.dtype,
            "--executor", "serial", "--out", config.out, "--run", config.run, "--no-figures", "--no-progress"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(read_cells(config.run_dir)) == config.n_cells()
    assert read_manifest(config.run_dir)["config"]["executor"] == "serial"
    return config, config.run_dir


def only(df, frameworks):
    return df[df.framework.isin(frameworks)].reset_index(drop=True)


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_executors_give_the_same_numbers(executor, reference, tmp_path, request):
    """Every available framework on local processes; scratch on a Dask cluster (by its
    address), to keep this file fast: the Dask workers then need no TensorFlow or torch."""
    config, ref_dir = reference
    frameworks, scheduler = config.frameworks, None
    if executor == "dask":
        frameworks, scheduler = ("scratch",), request.getfixturevalue("dask_cluster").scheduler_address
    other = tiny(tmp_path, frameworks=frameworks, dtype=config.dtype, executor=executor, workers=2,
                 scheduler=scheduler)
    summary = run(other)
    assert summary.ran == other.n_cells() == len(read_cells(other.run_dir))
    pd.testing.assert_frame_equal(table(other.run_dir), only(table(ref_dir), frameworks), check_exact=True)
    pd.testing.assert_frame_equal(table(other.run_dir, "curves"), only(table(ref_dir, "curves"), frameworks),
                                  check_exact=True)
    manifest = read_manifest(other.run_dir)
    assert manifest["status"] == "finished" and manifest["config"]["executor"] == executor


def test_dask_local_cluster_started_by_the_runner(reference, tmp_path):
    """No --scheduler: the runner starts (and closes) its own LocalCluster."""
    config, ref_dir = reference
    other = tiny(tmp_path, frameworks=("scratch",), dtype=config.dtype, executor="dask", workers=1)
    run(other)
    pd.testing.assert_frame_equal(table(other.run_dir), only(table(ref_dir), ["scratch"]), check_exact=True)


@pytest.mark.parametrize("framework", FRAMEWORK_PARAMS)
def test_each_framework_trains_in_the_grid(framework, reference):
    config, ref_dir = reference
    df = read_cells(ref_dir)
    mine = df[df.framework == framework]
    assert len(mine) == 4
    assert (mine.status == "ok").all(), mine[["eta", "lmbda", "status", "error"]].to_string()
    assert (mine.epochs == 2).all()
    curves = read_curves(ref_dir)
    assert len(curves[curves.framework == framework]) == 8


def test_frameworks_agree_in_the_grid(reference):
    """Same initial weights and batches: after 2 epochs the frameworks agree closely (float32)."""
    config, ref_dir = reference
    if len(AVAILABLE) < 2:
        pytest.skip("only scratch is available: " + "; ".join(w for w in MISSING.values() if w))
    df = read_cells(ref_dir).set_index(["eta", "lmbda"]).sort_index()
    base = df[df.framework == "scratch"]
    for fw in AVAILABLE[1:]:
        other = df[df.framework == fw]
        np.testing.assert_allclose(other.train_loss, base.train_loss, rtol=1e-4, err_msg=fw)


# --------------------------------------------------------------------------- files and resume


def test_run_folder_files_and_manifest(reference):
    config, run_dir = reference
    assert {"manifest.json", "cells.csv", "curves.csv"} <= set(os.listdir(run_dir))
    with open(os.path.join(run_dir, "cells.csv")) as fh:
        assert fh.readline().strip() == ",".join(CELL_COLUMNS)
    with open(os.path.join(run_dir, "curves.csv")) as fh:
        assert fh.readline().strip() == ",".join(CURVE_COLUMNS)
    m = read_manifest(run_dir)
    assert m["run"] == "tiny" and m["status"] == "finished" and m["finished"] and m["started"]
    assert m["config"]["etas"] == [0.1, 0.01] and m["config"]["epochs"] == 2
    assert {"python", "numpy", "torch", "tensorflow", "keras", "pandas", "dask"} <= set(m["versions"])
    assert "git_commit" in m and {"platform", "processor", "cpu_count", "hostname"} <= set(m["machine"])
    assert len(m["config_hash"]) == 16


def test_resume_after_interrupt_loses_and_repeats_nothing(tmp_path):
    whole = tiny(tmp_path / "whole")
    run(whole)

    config = tiny(tmp_path / "parts")
    seen = []

    def stop_after_two(row):
        seen.append(row)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(GridInterrupted, match="run the same command again to resume"):
        run(config, on_cell_done=stop_after_two)
    assert len(read_cells(config.run_dir)) == 2
    assert read_manifest(config.run_dir)["status"] == "interrupted"

    # Resumed on another executor: executor and workers are not part of the identity.
    resumed = tiny(tmp_path / "parts", executor="process", workers=2)
    summary = run(resumed)
    assert (summary.skipped, summary.ran) == (2, 2)
    got = table(config.run_dir)
    assert not got.duplicated(["framework", "eta", "lmbda", "seed"]).any()
    pd.testing.assert_frame_equal(got, table(whole.run_dir), check_exact=True)
    pd.testing.assert_frame_equal(table(config.run_dir, "curves"), table(whole.run_dir, "curves"), check_exact=True)
    m = read_manifest(config.run_dir)
    assert m["status"] == "finished" and [s["status"] for s in m["sessions"]] == ["interrupted", "finished"]

    # A third run has nothing to do.
    assert run(resumed).ran == 0


def test_a_dead_worker_is_replaced_and_its_cells_rerun(tmp_path):
    config = tiny(tmp_path, executor="process", workers=2, epochs=10, limit=400)
    whole = tiny(tmp_path / "whole", epochs=10, limit=400)
    run(whole)
    others = {p.pid for p in multiprocessing.active_children()}  # e.g. a Dask cluster's processes
    killed = []

    def kill_workers(row):
        if not killed:
            for child in multiprocessing.active_children():
                if child.pid not in others:
                    os.kill(child.pid, signal.SIGKILL)
                    killed.append(child.pid)

    summary = run(config, on_cell_done=kill_workers)
    assert killed and summary.ran == 4 and summary.ok == 4
    pd.testing.assert_frame_equal(table(config.run_dir), table(whole.run_dir), check_exact=True)
    curves = read_curves(config.run_dir)
    assert len(curves) == 4 * 10 and not curves.duplicated(["framework", "eta", "lmbda", "seed", "epoch"]).any()


def test_workers_that_keep_dying_stop_the_run_and_it_resumes(tmp_path, monkeypatch):
    from experiments.grid import executors

    monkeypatch.setattr(executors, "RESTARTS", 0)
    config = tiny(tmp_path, executor="process", workers=2, epochs=10, limit=400)
    others = {p.pid for p in multiprocessing.active_children()}

    def kill_workers(row):
        for child in multiprocessing.active_children():
            if child.pid not in others:
                try:
                    os.kill(child.pid, signal.SIGKILL)
                except ProcessLookupError:  # killed at an earlier cell, not yet reaped
                    pass

    with pytest.raises(GridAborted, match="worker process died.*run the same command again"):
        run(config, on_cell_done=kill_workers)
    kept = read_cells(config.run_dir)
    assert 1 <= len(kept) < 4 and (kept.status == "ok").all()
    summary = run(config)
    assert summary.skipped == len(kept) and summary.ran == 4 - len(kept)


def test_diverging_cell_is_a_result(tmp_path):
    config = tiny(tmp_path, etas=(0.1, 1e4), lmbdas=(1e-4,), epochs=3)
    summary = run(config)
    assert (summary.ok, summary.diverged, summary.failed) == (1, 1, 0)
    df = read_cells(config.run_dir).set_index("eta")
    bad, good = df.loc[1e4], df.loc[0.1]
    assert bad.status == "diverged" and 1 <= bad.diverged_epoch <= 3 and bad.epochs == bad.diverged_epoch
    assert good.status == "ok" and pd.isna(good.diverged_epoch) and good.epochs == 3
    curves = read_curves(config.run_dir)
    assert curves[curves.eta == 1e4].epoch.max() == bad.diverged_epoch
    # A rerun does not retry a diverged cell.
    assert run(config).ran == 0
    # Train metrics only after the last epoch: the same cells.
    last = tiny(tmp_path, etas=(0.1, 1e4), lmbdas=(1e-4,), epochs=3, train_eval="last", run="last")
    run(last)
    pd.testing.assert_frame_equal(table(last.run_dir), table(config.run_dir), check_exact=True)


def test_train_eval_last_gives_the_same_final_numbers(tmp_path):
    every = tiny(tmp_path / "every")
    last = tiny(tmp_path / "last", train_eval="last")
    run(every)
    run(last)
    pd.testing.assert_frame_equal(table(last.run_dir), table(every.run_dir), check_exact=True)
    a, b = table(every.run_dir, "curves"), table(last.run_dir, "curves")
    final = b.epoch == 2
    pd.testing.assert_frame_equal(b[final], a[final], check_exact=True)
    assert b[~final].train_loss.isna().all() and b[~final].train_accuracy.isna().all()
    for column in ("loss", "test_loss", "test_accuracy"):
        assert b[column].tolist() == a[column].tolist()


def test_failed_cell_is_recorded_and_rerun(tmp_path, monkeypatch):
    import experiments.grid.cells as frameworks

    real = frameworks.make_trainer

    def flaky(framework, layers, input_shape, **kw):
        if kw["learning_rate"] == 0.01 and kw["l2"] == 1e-2:
            raise RuntimeError("boom\nsecond line")
        return real(framework, layers, input_shape, **kw)

    monkeypatch.setattr(frameworks, "make_trainer", flaky)
    config = tiny(tmp_path)
    summary = run(config)
    assert (summary.ok, summary.failed) == (3, 1)
    df = read_cells(config.run_dir)
    failed = df[df.status == "failed"].iloc[0]
    assert (failed.eta, failed.lmbda, failed.error) == (0.01, 1e-2, "RuntimeError: boom second line")
    assert (df[df.status == "ok"].error == "").all()

    monkeypatch.setattr(frameworks, "make_trainer", real)
    summary = run(config)
    assert (summary.skipped, summary.ran, summary.ok) == (3, 1, 1)
    df = read_cells(config.run_dir)
    assert len(df) == 4 and (df.status == "ok").all()


def test_mnist_from_a_small_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 60).astype(np.uint8),
             x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), y_test=rng.integers(0, 10, 20).astype(np.uint8))
    rc = cli_main(["grid", "--dataset", "mnist", "--data", str(path), "--limit", "50", "--frameworks", "scratch",
                   "--eta", "0.1", "--lmbda", "0", "--epochs", "1", "--batch-size", "25", "--executor", "serial",
                   "--out", str(tmp_path), "--run", "mnist", "--no-figures", "--no-progress"])
    assert rc == 0
    df = read_cells(tmp_path / "mnist")
    assert len(df) == 1 and df.status.iloc[0] == "ok" and df.epochs.iloc[0] == 1
    assert read_manifest(tmp_path / "mnist")["config"]["data"] == str(path)


# --------------------------------------------------------------------------- config and CLI


def test_changed_config_is_refused(tmp_path, capsys):
    config = tiny(tmp_path)
    run(config)
    with pytest.raises(ValueError, match=r"--run: the run 'tiny' .*epochs: 2 -> 3.*new --run name"):
        run(tiny(tmp_path, epochs=3))
    base = ["grid", "--frameworks", "scratch", "--limit", "200", "--eta", "0.1", "0.01", "--lmbda", "1e-4,1e-2",
            "--batch-size", "20", "--dtype", "float64", "--executor", "serial", "--out", str(tmp_path), "--run", "tiny",
            "--no-figures", "--no-progress"]
    capsys.readouterr()
    assert cli_main(base + ["--epochs", "2"]) == 0  # the same config: nothing to do
    capsys.readouterr()
    assert cli_main(base + ["--epochs", "2", "--eta", "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xfw: error: --run:") and "etas: [0.01, 0.1] -> [0.01, 0.1, 0.5]" in err[0]  # list options add up
    assert len(read_cells(config.run_dir)) == 4


def test_course_config_file_and_cli_overrides(tmp_path):
    from experiments.cli.grid import config_from_args

    path = os.path.join(ROOT, "experiments", "configs", "course.toml")
    c = GridConfig.from_toml(path)
    assert (c.run, c.arch, c.dataset, c.frameworks) == ("course", "course_cnn", "digits", ("scratch", "keras", "torch"))
    assert c.etas == c.lmbdas == DEFAULT_GRID and len(c.etas) == 7
    assert np.allclose(c.etas, np.logspace(-5, 1, 7), rtol=1e-15)
    assert (c.epochs, c.batch_size, c.optimizer, c.seeds, c.executor) == (100, 100, "sgd", (0,), "population")
    assert c.n_cells() == 147 and len(cell_tasks(c)) == 147
    assert GridConfig().identity() == {**c.identity()}  # the course config is the default grid

    args = build_parser().parse_args(["grid", "--config", path, "--epochs", "5", "--eta", "0.1,1",
                                          "--seeds", "0", "1", "--run", "quick"])
    o = config_from_args(args)
    assert (o.epochs, o.etas, o.seeds, o.run, o.lmbdas) == (5, (0.1, 1.0), (0, 1), "quick", DEFAULT_GRID)

    bad = tmp_path / "bad.toml"
    bad.write_text('epochs = 3\ncolour = "red"\n')
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        GridConfig.from_toml(bad)


COMMON = ["grid", "--frameworks", "scratch", "--limit", "100", "--epochs", "1", "--eta", "0.1", "--lmbda", "0",
          "--batch-size", "10", "--executor", "serial", "--no-figures", "--no-progress"]


@pytest.mark.parametrize("extra, start", [
    (["--frameworks", "scratch,caffe"], "--frameworks: unknown framework 'caffe'; allowed: scratch, keras, torch"),
    (["--arch", "resnet"], "--arch: unknown architecture 'resnet'; allowed: course_cnn"),
    (["--optimizer", "lbfgs"], "--optimizer: unknown optimizer 'lbfgs'; allowed: sgd"),
    (["--dataset", "cifar"], "--dataset: unknown data set 'cifar'"),
    (["--executor", "threads"], "--executor: unknown executor 'threads'; allowed: population, serial, process, dask"),
    (["--dtype", "float16"], "--dtype: unknown dtype 'float16'; allowed: float32, float64"),
    (["--eta", ","], "--eta: the list is empty"),
    (["--lmbda", ""], "--lmbda: the list is empty"),
    (["--eta", "0.1", "0"], "--eta: 0.0 is not allowed; every value must be a finite number > 0"),
    (["--eta", "-0.5"], "--eta: -0.5 is not allowed"),
    (["--eta", "abc"], "--eta: 'abc' is not a number"),
    (["--lmbda", "-1"], "--lmbda: -1.0 is not allowed; every value must be a finite number >= 0"),
    (["--epochs", "0"], "argument --epochs: 0 must be an integer > 0"),
    (["--batch-size", "500"], "--batch-size: 500 is larger than the 80 training samples"),
    (["--dataset", "mnist", "--data", "/nonexistent/mnist.npz"],
     "--data: mnist: /nonexistent/mnist.npz does not exist"),
    (["--dataset", "mnist"], "--data: the mnist data set needs --data PATH"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"], "--scheduler: cannot reach a Dask scheduler at"),
])
def test_bad_input_is_one_line_before_training(extra, start, tmp_path, capsys):
    try:
        given = {a for a in extra if a.startswith("--")}  # the options under test replace COMMON's
        common = [a for i, a in enumerate(COMMON) if not {a, COMMON[i - 1]} & given]
        rc = cli_main(common + ["--out", str(tmp_path)] + extra)
    except SystemExit as e:  # argparse's own errors (here made one line) exit directly
        rc = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1, err
    assert err[0].startswith("xfw: error: " + start), err[0]
    assert os.listdir(tmp_path) == []  # nothing trained, no run folder


def test_cli_runs_and_resumes(tmp_path, capsys):
    argv = COMMON + ["--out", str(tmp_path), "--run", "cli"]
    assert cli_main(argv) == 0
    first = capsys.readouterr().err
    assert "1 cells" in first or "1 ok" in first
    assert cli_main(argv) == 0
    assert "1 of 1 cells already done" in capsys.readouterr().err
    assert len(read_cells(tmp_path / "cli")) == 1
