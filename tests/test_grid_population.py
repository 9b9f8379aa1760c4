"""The population executor gives the serial executor's rows and curves, resumes cell by
cell, records divergence with its epoch, and cuts large populations into chunks."""
import numpy as np
import pandas as pd
import pytest

from experiments.errors import UsageError
from experiments.grid.cells import cell_tasks
from experiments.grid.config import GridConfig
from experiments.grid.population import PopulationTask, population_tasks, run_population_task
from experiments.grid.run import run_grid
from experiments.grid.store import read_cells, read_curves


def tiny(tmp_path, **kw) -> GridConfig:
    values = dict(arch="course_cnn", dataset="digits", limit=200, frameworks=("scratch",), etas=(0.1, 0.01),
                  lmbdas=(1e-4, 1e-2), epochs=3, batch_size=20, seeds=(0,), dtype="float64",
                  executor="serial", workers=2, out=str(tmp_path), run="tiny")
    values.update(kw)
    return GridConfig(**values)


def _run(config, **kw):
    return run_grid(config, progress=False, figures=False, echo=lambda text: None, **kw)


def _table(run_dir, what):
    keys = ["framework", "eta", "lmbda", "seed"] + (["epoch"] if what == "curves" else [])
    df = read_cells(run_dir).drop(columns=["seconds"]) if what == "cells" else read_curves(run_dir)
    return df.sort_values(keys).reset_index(drop=True)


@pytest.mark.parametrize("framework", ["scratch", "torch", "keras"])
def test_population_executor_gives_the_serial_rows_and_curves(tmp_path, framework):
    grid = dict(etas=(0.1, 0.01, 1e4), lmbdas=(1e-4, 1.0), frameworks=(framework,))
    serial = tiny(tmp_path, run="serial", **grid)
    pop = tiny(tmp_path, run="pop", executor="population", **grid)
    _run(serial)
    _run(pop)
    cells_a, cells_b = _table(serial.run_dir, "cells"), _table(pop.run_dir, "cells")
    ok = cells_a.status == "ok"
    pd.testing.assert_frame_equal(cells_a[ok], cells_b[ok], check_exact=False, rtol=1e-12)
    # Every epoch's curve row agrees, except the epoch where a cell diverged: the serial
    # trainer evaluates the NaN weights, the population reports NaN metrics for it.
    a, b = _table(serial.run_dir, "curves"), _table(pop.run_dir, "curves")
    last = a.merge(cells_a[["eta", "lmbda", "diverged_epoch"]], on=["eta", "lmbda"])
    keep = (last.diverged_epoch.isna() | (last.epoch < last.diverged_epoch)).to_numpy()
    assert len(a) == len(b) and not keep.all()
    pd.testing.assert_frame_equal(a[keep], b[keep], check_exact=False, rtol=1e-12)
    assert not np.isfinite(b[~keep].loss).any()
    div = cells_a.status == "diverged"
    assert div.any()  # eta = 1e4 with lambda = 1: the L2 step overflows
    pd.testing.assert_series_equal(cells_a.diverged_epoch, cells_b.diverged_epoch)
    pd.testing.assert_series_equal(cells_a.status, cells_b.status)
    assert cells_b[div].test_loss.isna().all()  # a frozen member is not evaluated


def test_population_run_resumes_the_missing_cells(tmp_path):
    config = tiny(tmp_path, executor="population", workers=1)
    stopped = []

    def stop(row):
        stopped.append(row)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(config, on_cell_done=stop)
    assert len(read_cells(config.run_dir)) == 1  # the population's first cell was written, then Ctrl-C
    summary = _run(config)
    assert summary.skipped == 1 and summary.ran == 3
    ref = tiny(tmp_path, run="ref")
    _run(ref)
    pd.testing.assert_frame_equal(_table(ref.run_dir, "cells"), _table(config.run_dir, "cells"),
                                  check_exact=False, rtol=1e-12)


def test_populations_are_one_per_framework_and_seed_and_chunked_by_memory(tmp_path):
    config = tiny(tmp_path, frameworks=("scratch", "torch"), seeds=(0, 1))
    tasks = cell_tasks(config)
    groups = population_tasks(tasks)
    assert sorted((g.framework, g.seed, len(g.cells)) for g in groups) == [
        ("scratch", 0, 4), ("scratch", 1, 4), ("torch", 0, 4), ("torch", 1, 4)]
    with_keras = population_tasks(cell_tasks(tiny(tmp_path, frameworks=("keras", "scratch"))))
    assert sorted((g.framework, len(g.cells)) for g in with_keras) == [("keras", 4), ("scratch", 4)]
    shared = population_tasks(tasks, workers=2)  # every worker gets a share of every population
    assert sorted((g.framework, g.seed, len(g.cells)) for g in shared[:4]) == [
        ("scratch", 0, 2), ("scratch", 1, 2), ("torch", 0, 2), ("torch", 1, 2)]
    in_order = {(fw, seed): [t for t in tasks if (t.framework, t.seed) == (fw, seed)]
                for fw, seed in {(t.framework, t.seed) for t in tasks}}
    assert all(list(g.cells) == in_order[g.framework, g.seed][:2] for g in shared[:4])  # first chunks first
    assert [len(g.cells) for g in shared] == [2] * 8
    assert {t for g in shared for t in g.cells} == set(tasks)
    chunked = population_tasks(tasks, budget=1)  # nothing fits: one member per chunk
    assert sorted(len(g.cells) for g in chunked if g.framework == "scratch") == [1] * 8
    assert sum(len(g.cells) for g in chunked) == len(tasks)


def test_keras_populations_stay_whole_and_come_first_unless_a_worker_would_idle(tmp_path):
    """A worker's first Keras unit costs it TensorFlow's import and the traces: Keras
    populations are not shared out among the workers, the others are."""
    tasks = cell_tasks(tiny(tmp_path, frameworks=("scratch", "keras", "torch")))
    units = population_tasks(tasks, workers=2)
    assert [(u.framework, len(u.cells)) for u in units] == [
        ("keras", 4), ("scratch", 2), ("torch", 2), ("scratch", 2), ("torch", 2)]
    assert {t for u in units for t in u.cells} == set(tasks)
    alone = population_tasks(cell_tasks(tiny(tmp_path, frameworks=("keras",))), workers=2)
    assert [(u.framework, len(u.cells)) for u in alone] == [("keras", 2), ("keras", 2)]  # no idle worker
    by_memory = population_tasks(tasks, budget=1, workers=2)
    assert sorted(len(u.cells) for u in by_memory if u.framework == "keras") == [1] * 4


def test_a_failing_population_fails_its_cells_with_the_error(tmp_path):
    task = cell_tasks(tiny(tmp_path))[0]
    broken = PopulationTask((type(task)(**{**task.__dict__, "arch": "no_such_arch"}),))
    [(t, result)] = run_population_task(broken)
    assert result["row"]["status"] == "failed" and "no_such_arch" in result["row"]["error"]


def test_scheduler_needs_dask_or_population(tmp_path):
    with pytest.raises(UsageError, match="--scheduler: a scheduler address needs --executor dask or population"):
        tiny(tmp_path, executor="serial", scheduler="tcp://127.0.0.1:1").validate(load_data=False)
    assert GridConfig().executor == "population"


def test_input_shape_asks_for_the_synthetic_lenet_grid(tmp_path):
    config = tiny(tmp_path, arch="lenet", dataset="synthetic", input_shape="1,28,28", limit=60, batch_size=8)
    assert config.input_shape == (1, 28, 28) and config.identity()["input_shape"] == [1, 28, 28]
    assert config.validate(check_scheduler=False).input_shape == (1, 28, 28)
    assert "input_shape" not in tiny(tmp_path).identity()  # runs without it keep their identity
    assert {t.input_shape for t in cell_tasks(config)} == {(1, 28, 28)}


@pytest.mark.parametrize("value, message", [
    ("1,28", r"--input-shape: '1,28' is not a sample shape; expected C,H,W, three positive integers"),
    ("1,0,28", r"--input-shape: '1,0,28' is not a sample shape"),
    ("a,b,c", r"--input-shape: 'a,b,c' is not a sample shape"),
])
def test_bad_input_shapes_get_one_line(tmp_path, value, message):
    with pytest.raises(UsageError, match=message):
        tiny(tmp_path, dataset="synthetic", input_shape=value)


def test_input_shape_is_for_the_synthetic_data_set_only(tmp_path):
    with pytest.raises(UsageError, match="--input-shape: only the synthetic data set takes a sample shape; "
                                         "--dataset is 'digits'"):
        tiny(tmp_path, input_shape=(1, 28, 28)).validate(load_data=False)


def test_networks_with_dropout_train_cell_by_cell_in_torch_and_keras(tmp_path, monkeypatch):
    from scratch import architectures, spec

    from experiments.grid.population import vectorised

    layers = architectures.get("course_cnn")
    with_dropout = layers[:3] + (spec.Dropout(0.5),) + layers[3:]
    monkeypatch.setattr(architectures, "get", lambda name: with_dropout)
    tasks = {t.framework: t for t in cell_tasks(tiny(tmp_path, frameworks=("scratch", "torch", "keras")))}
    assert {fw: vectorised(t) for fw, t in tasks.items()} == {"scratch": True, "torch": False, "keras": False}


def test_keras_networks_with_a_second_conv2d_train_cell_by_cell(tmp_path):
    """lenet's second Conv2D would be a grouped convolution in the wide Keras network."""
    from experiments.grid.population import population_tasks, vectorised

    config = tiny(tmp_path, frameworks=("scratch", "torch", "keras"), arch="lenet", dataset="synthetic",
                  input_shape=(1, 28, 28))
    tasks = cell_tasks(config)
    assert {t.framework: vectorised(t) for t in tasks} == {"scratch": True, "torch": True, "keras": False}
    course = {t.framework: vectorised(t) for t in cell_tasks(tiny(tmp_path, frameworks=("keras",)))}
    assert course == {"keras": True}
    units = population_tasks(tasks, workers=2)
    keras_units = [u for u in units if u.framework == "keras"]
    assert keras_units and all(len(u.cells) == 1 for u in keras_units)


def test_a_worker_imports_a_framework_with_its_first_unit_on_one_thread(tmp_path):
    """A local worker starts with NumPy only and the parent's data sets (it loads none);
    its first Keras population imports torch, then TensorFlow, and limits both to one
    thread before the first step."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from experiments.grid.executors import _init_worker\n"
        "from experiments.grid.cells import cell_tasks\n"
        "from experiments.grid.config import GridConfig\n"
        "from experiments.grid.population import population_tasks, run_population_task\n"
        "from experiments.grid import cells\n"
        "import os\n"
        f"config = GridConfig(frameworks=('keras',), etas=(0.1,), lmbdas=(0.0,), epochs=1, limit=100, batch_size=20, out={str(tmp_path)!r})\n"
        "[unit] = population_tasks(cell_tasks(config))\n"
        "loaded = cells.datasets_of(unit.cells)\n"
        "cells._DATA_CACHE.clear()\n"
        "def no_loading(task): raise AssertionError('the worker loaded its data set')\n"
        "cells.load_dataset = no_loading\n"
        "_init_worker(os.getppid(), loaded)\n"
        "assert not {'tensorflow', 'torch', 'keras'} & set(sys.modules), 'imported at start'\n"
        "[(_, result)] = run_population_task(unit)\n"
        "import tensorflow as tf, torch\n"
        "print(result['row']['status'], tf.config.threading.get_intra_op_parallelism_threads(),\n"
        "      tf.config.threading.get_inter_op_parallelism_threads(), torch.get_num_threads())\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[-4:] == ["ok", "1", "1", "1"]

