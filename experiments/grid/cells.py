"""One grid cell: what it needs (:class:`CellTask`), the cells of a config, and its training.

A *cell* is one (framework, eta, lambda, seed): a fresh model of the run's architecture,
initial weights from the seed (the scratch initializer, shared by all frameworks),
trained for ``epochs`` epochs over the seeded batch order, evaluated on the training and
test sets after every epoch. :func:`run_cell` is a pure function of its
:class:`CellTask` (no global random state), so a cell gives the same numbers in any
executor, worker and order.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from ..runtime import limit_threads, make_trainer
from .config import GridConfig, load_dataset

@dataclass(frozen=True)
class CellTask:
    """Everything one cell needs, picklable (sent to worker processes)."""

    framework: str
    eta: float
    lmbda: float
    seed: int
    arch: str
    dataset: str
    data: str | None
    limit: int | None
    dtype: str
    epochs: int
    batch_size: int
    optimizer: str
    flavor: str
    init: str
    loss: str
    train_eval: str = "every"
    input_shape: tuple | None = None  # the synthetic data set's sample shape

    @property
    def key(self) -> tuple:
        return (self.framework, float(self.eta), float(self.lmbda), int(self.seed))


def cell_tasks(config: GridConfig) -> list:
    """The tasks of every cell of ``config``, in submission order.

    Seeds, then eta ascending (the high, fast-diverging etas come last and fill the
    tail), then lambda; frameworks interleaved, so that the workers share the heavy
    and the light frameworks instead of running one framework at a time.
    """
    # Workers may start elsewhere: absolute paths (a pair is written PATH,PATH).
    data = ",".join(os.path.abspath(p.strip()) for p in config.data.split(",")) if config.data else None
    common = dict(arch=config.arch, dataset=config.dataset, data=data, limit=config.limit,
                  dtype=config.dtype, epochs=config.epochs, batch_size=config.batch_size,
                  optimizer=config.optimizer, flavor=config.flavor, init=config.init, loss=config.loss,
                  train_eval=config.train_eval, input_shape=config.input_shape)
    return [CellTask(framework=fw, eta=eta, lmbda=lmbda, seed=seed, **common)
            for seed in config.seeds
            for eta in sorted(config.etas)
            for lmbda in sorted(config.lmbdas)
            for fw in config.frameworks]


# --------------------------------------------------------------------------- one cell

_DATA_CACHE: dict = {}


def _data_key(task: CellTask) -> tuple:
    return (task.dataset, task.data, task.limit, task.dtype, task.input_shape)


def dataset_of(task: CellTask):
    """The task's data set, loaded once per process (a few kept)."""
    key = _data_key(task)
    if key not in _DATA_CACHE:
        remember_datasets({key: load_dataset(task)})
    return _DATA_CACHE[key]


def datasets_of(tasks) -> dict:
    """The data sets of ``tasks``, loaded here (once), keyed for :func:`remember_datasets`:
    the parent hands them to its local workers, which then load nothing (the digits
    loader's scikit-learn import alone takes 1.6 s)."""
    return {_data_key(t): dataset_of(t) for t in tasks}


def remember_dataset(task: CellTask, data) -> None:
    """Keep ``data``, loaded elsewhere, as the data set of ``task`` (and of every task on it)."""
    remember_datasets({_data_key(task): data})


def remember_datasets(datasets: dict) -> None:
    """Keep ``datasets`` (from :func:`datasets_of`) for the tasks of this process."""
    for key, data in datasets.items():
        if key not in _DATA_CACHE and len(_DATA_CACHE) >= 4:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = data


def one_line(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def run_cell(task: CellTask) -> dict:
    """Train one cell; ``{"row": cells.csv row, "curves": [curves.csv rows]}``.

    Never raises for a problem of the cell itself: an exception becomes status
    ``failed`` with the error in the row (KeyboardInterrupt and the like propagate).
    """
    from scratch import architectures

    limit_threads((task.framework,))  # in a worker, the framework's first cell imports it
    start = time.perf_counter()
    curves = []

    def on_epoch_end(row):
        curves.append(curve_row(task, row))

    status, error = "ok", None
    try:
        data = dataset_of(task)
        trainer = make_trainer(task.framework, architectures.get(task.arch), data.input_shape, loss=task.loss,
                               optimizer=task.optimizer, learning_rate=float(task.eta), l2=float(task.lmbda),
                               dtype=task.dtype, seed=int(task.seed), init=task.init, flavor=task.flavor)
        every = task.train_eval == "every"
        history = trainer.fit(data.x_train, data.y_train, epochs=task.epochs, batch_size=task.batch_size,
                              seed=int(task.seed), validation_data=(data.x_test, data.y_test),
                              on_epoch_end=on_epoch_end, **({} if every else {"evaluate_train": False}))
        if not curves and history:  # a trainer that does not call back: take its history
            for row in history:
                on_epoch_end(row)
        if not every and curves:  # the last epoch's train metrics, as "every" gives them
            try:
                final = trainer.evaluate(data.x_train, data.y_train)
            except Exception:  # noqa: BLE001  e.g. weights that diverged to NaN
                if not curves[-1]["_diverged"]:
                    raise
            else:
                curves[-1]["train_loss"], curves[-1]["train_accuracy"] = (_num(final["loss"]),
                                                                          _num(final["accuracy"]))
    except Exception as e:  # noqa: BLE001  the cell fails, the run goes on
        status, error = "failed", one_line(f"{type(e).__name__}: {e}")
    return cell_result(task, curves, status, error, time.perf_counter() - start)


def curve_row(task: CellTask, row: dict) -> dict:
    """A curves.csv row (with a transient ``_diverged`` flag) from a training history row."""
    return {"framework": task.framework, "eta": float(task.eta), "lmbda": float(task.lmbda), "seed": int(task.seed),
            "epoch": int(row["epoch"]), "loss": _num(row.get("loss")),
            "train_loss": _num(row.get("train_loss")), "train_accuracy": _num(row.get("train_accuracy")),
            "test_loss": _num(row.get("test_loss")), "test_accuracy": _num(row.get("test_accuracy")),
            "_diverged": bool(row.get("diverged"))}


def cell_result(task: CellTask, curves: list, status: str, error, seconds: float) -> dict:
    """``{"row": cells.csv row, "curves": [...]}`` from the cell's :func:`curve_row` rows:
    the first epoch whose loss is NaN or inf makes the cell ``diverged`` (curves end there)."""
    key = dict(framework=task.framework, eta=float(task.eta), lmbda=float(task.lmbda), seed=int(task.seed))
    diverged_epoch = None
    for row in curves:
        if row["_diverged"] or not _finite(row["loss"]):
            diverged_epoch = row["epoch"]
            break
    if diverged_epoch is not None and status == "ok":
        status = "diverged"
        del curves[diverged_epoch:]
    last = curves[-1] if curves else {}
    for row in curves:
        row.pop("_diverged")
    cell = {**key, "epochs": len(curves),
            "train_loss": last.get("train_loss"), "train_accuracy": last.get("train_accuracy"),
            "test_loss": last.get("test_loss"), "test_accuracy": last.get("test_accuracy"),
            "status": status, "diverged_epoch": diverged_epoch if status == "diverged" else None,
            "seconds": seconds, "error": error}
    return {"row": cell, "curves": curves}


def _num(value):
    return None if value is None else float(value)


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)
