"""The eta x lambda grid: cells, one cell's training, a whole run, and its benchmark.

A *cell* is one (framework, eta, lambda, seed): a fresh model of the run's architecture,
initial weights from the seed (the scratch initializer, shared by all frameworks),
trained for ``epochs`` epochs over the seeded batch order, evaluated on the training and
test sets after every epoch. :func:`run_cell` is a pure function of its
:class:`CellTask` (no global random state), so a cell gives the same numbers in any
executor, worker and order.

:func:`run_grid` runs every cell of a :class:`~experiments.config.GridConfig` that is
not finished yet in ``<out>/<run>/`` (see :mod:`experiments.store`), writing each
result as soon as it arrives:

* a cell whose training loss becomes NaN or inf is stored with status ``diverged``
  and the epoch it happened; a cell that raises is stored ``failed`` with the error
  (and reruns next time); the run goes on in both cases;
* Ctrl-C stops the run: pending cells are cancelled, workers stopped, the manifest
  marked ``interrupted``; :class:`GridInterrupted` (a ``KeyboardInterrupt``) is raised
  and the same command resumes;
* a worker that dies stops the run the same way with :class:`GridAborted`.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from .config import DEFAULT_GRID, FRAMEWORKS, GridConfig, identity_changes, load_dataset
from .store import RunStore, git_commit, machine, now, versions


class GridInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says what is kept and how to resume."""


class GridAborted(RuntimeError):
    """A worker died; finished cells are kept and the same command resumes."""


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

    @property
    def key(self) -> tuple:
        return (self.framework, float(self.eta), float(self.lmbda), int(self.seed))


def cells(config: GridConfig) -> list:
    """The tasks of every cell of ``config``, in submission order.

    Seeds, then eta ascending (the high, fast-diverging etas come last and fill the
    tail), then lambda; frameworks interleaved, so that the workers share the heavy
    and the light frameworks instead of running one framework at a time.
    """
    data = os.path.abspath(config.data) if config.data else None  # workers may start elsewhere
    common = dict(arch=config.arch, dataset=config.dataset, data=data, limit=config.limit,
                  dtype=config.dtype, epochs=config.epochs, batch_size=config.batch_size,
                  optimizer=config.optimizer, flavor=config.flavor, init=config.init, loss=config.loss,
                  train_eval=config.train_eval)
    return [CellTask(framework=fw, eta=eta, lmbda=lmbda, seed=seed, **common)
            for seed in config.seeds
            for eta in sorted(config.etas)
            for lmbda in sorted(config.lmbdas)
            for fw in config.frameworks]


# --------------------------------------------------------------------------- one cell

_DATA_CACHE: dict = {}


def _dataset(task: CellTask):
    """The task's data set, loaded once per process (a few kept)."""
    key = (task.dataset, task.data, task.limit, task.dtype)
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) >= 4:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = load_dataset(task)
    return _DATA_CACHE[key]


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def run_cell(task: CellTask) -> dict:
    """Train one cell; ``{"row": cells.csv row, "curves": [curves.csv rows]}``.

    Never raises for a problem of the cell itself: an exception becomes status
    ``failed`` with the error in the row (KeyboardInterrupt and the like propagate).
    """
    from scratch import architectures

    from .frameworks import make_trainer

    start = time.perf_counter()
    key = dict(framework=task.framework, eta=float(task.eta), lmbda=float(task.lmbda), seed=int(task.seed))
    curves = []

    def on_epoch_end(row):
        curves.append({**key, "epoch": int(row["epoch"]), "loss": _num(row.get("loss")),
                       "train_loss": _num(row.get("train_loss")), "train_accuracy": _num(row.get("train_accuracy")),
                       "test_loss": _num(row.get("test_loss")), "test_accuracy": _num(row.get("test_accuracy")),
                       "_diverged": bool(row.get("diverged"))})

    status, error = "ok", None
    try:
        data = _dataset(task)
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
        status, error = "failed", _one_line(f"{type(e).__name__}: {e}")
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
            "seconds": time.perf_counter() - start, "error": error}
    return {"row": cell, "curves": curves}


def _num(value):
    return None if value is None else float(value)


def _finite(value) -> bool:
    import math

    return value is not None and math.isfinite(value)


# --------------------------------------------------------------------------- a run


@dataclass
class RunSummary:
    run_dir: str
    total: int          # cells in the grid
    skipped: int        # already finished before this session
    ok: int = 0
    diverged: int = 0
    failed: int = 0
    seconds: float = 0.0
    status: str = "running"

    @property
    def ran(self) -> int:
        return self.ok + self.diverged + self.failed

    def line(self) -> str:
        return (f"{self.run_dir}: {self.ran} cells run in {self.seconds:.1f} s ({self.ok} ok, "
                f"{self.diverged} diverged, "
                f"{self.failed} failed); {self.skipped} were already done; {self.total} in the grid")


def open_run(config: GridConfig) -> RunStore:
    """The run's store after checking that an existing run has the same identity."""
    from .cli import UsageError

    store = RunStore(config.run_dir)
    manifest = store.read_manifest()
    if manifest is not None:
        old = manifest.get("identity") or {k: manifest.get("config", {}).get(k) for k in config.identity()}
        changes = identity_changes(old, config.identity())
        if changes:
            raise UsageError(
                f"--run: the run {config.run_name!r} in {config.run_dir} was made with another configuration "
                f"({'; '.join(changes)}); choose a new --run name (or --out folder) for the new configuration, "
                "or delete that folder to start it again")
    return store


def run_grid(config: GridConfig, *, progress: bool = True, figures: bool = True, on_cell_done=None,
             echo=None) -> RunSummary:
    """Run (or resume) the grid of ``config``; see the module docstring.

    ``on_cell_done(row)`` is called after each cell is written (tests use it to stop a
    run). ``echo`` prints the status lines (default: to stderr).
    """
    from .executors import WorkerLost, make_executor

    echo = echo or (lambda text: print(text, file=sys.stderr))
    config.validate()
    store = open_run(config)
    tasks = cells(config)
    done = store.done()
    todo = [t for t in tasks if t.key not in done]
    summary = RunSummary(run_dir=config.run_dir, total=len(tasks), skipped=len(tasks) - len(todo))

    manifest = store.read_manifest() or {}
    stamp = now()
    session = {"started": stamp, "finished": None, "status": "running", "executor": config.executor,
               "workers": config.n_workers, "scheduler": config.scheduler, "cells_to_run": len(todo)}
    manifest = {
        "run": config.run_name,
        "config": {**config.to_dict(), "run": config.run_name},
        "identity": config.identity(),
        "config_hash": config.identity_hash(),
        "versions": versions(),
        "git_commit": None,
        "git_dirty": None,
        "machine": machine(),
        "started": manifest.get("started") or stamp,
        "finished": None,
        "status": "running",
        "cells": {"total": len(tasks), "done": len(done)},
        "sessions": (manifest.get("sessions") or []) + [session],
    }
    git = git_commit()
    manifest["git_commit"], manifest["git_dirty"] = git["commit"], git["dirty"]
    store.write_manifest(manifest)

    def finish(status):
        stamp = now()
        session["finished"], session["status"] = stamp, status
        manifest["finished"] = stamp if status == "finished" else None
        manifest["status"] = status
        session["cells_run"] = summary.ran
        manifest["cells"]["done"] = len(store.done())
        store.write_manifest(manifest)

    if summary.skipped:
        echo(f"{config.run_dir}: {summary.skipped} of {len(tasks)} cells already done; running the other {len(todo)}")
    start = time.perf_counter()
    bar = None
    try:
        if todo:
            executor = make_executor(config.executor, config.frameworks, config.n_workers, config.scheduler)
            with executor:
                echo(f"{config.run_name}: {len(todo)} cells ({', '.join(config.frameworks)}; "
                     f"{len(config.etas)} eta x {len(config.lmbdas)} lambda x {len(config.seeds)} seed; "
                     f"{config.epochs} epochs) on {executor.describe()}")
                bar = _progress(len(todo), progress)
                for task, result in executor.run(run_cell, todo):
                    row = result["row"]
                    store.add(row, result["curves"])
                    setattr(summary, row["status"], getattr(summary, row["status"]) + 1)
                    if bar is not None:
                        bar.set_postfix_str(f"ok {summary.ok}, diverged {summary.diverged}, "
                                            f"failed {summary.failed}", refresh=False)
                        bar.update(1)
                    if row["status"] == "failed":
                        _write(bar, echo, f"failed: {task.framework} eta={task.eta:g} lambda={task.lmbda:g} "
                                          f"seed={task.seed}: {row['error']}")
                    if on_cell_done is not None:
                        on_cell_done(row)
    except (KeyboardInterrupt, WorkerLost) as e:
        # Everything that finished is already on disk; record the stop and say how to resume.
        _close(bar)
        summary.seconds, summary.status = time.perf_counter() - start, "interrupted"
        finish("interrupted")
        _after(config, store, figures, echo)
        stop, what = (GridInterrupted, "interrupted") if isinstance(e, KeyboardInterrupt) else (GridAborted, str(e))
        raise stop(f"{what}; {len(store.done())} of {len(tasks)} cells are done and kept in {config.run_dir}; "
                   "run the same command again to resume") from None
    except BaseException:
        _close(bar)
        finish("interrupted")
        raise
    _close(bar)
    summary.seconds, summary.status = time.perf_counter() - start, "finished"
    finish("finished")
    echo(summary.line())
    _after(config, store, figures, echo)
    return summary


def _progress(total, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="cell", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def _close(bar):
    if bar is not None:
        bar.close()


def _write(bar, echo, text):
    if bar is not None:
        bar.write(text, file=sys.stderr)
    else:
        echo(text)


def _after(config, store, figures, echo):
    """Heatmaps and the report, when the modules exist and there is something to draw."""
    if not figures or not store.cells:
        return
    draw_figures(store.run_dir, echo)


def draw_figures(run_dir, echo=None) -> bool:
    """``experiments.heatmaps.draw_run`` and ``experiments.report.write_report`` on ``run_dir``
    (skipped with a note when a module is missing; a failure is reported, not raised)."""
    import importlib

    echo = echo or (lambda text: print(text, file=sys.stderr))
    ok, figures = True, None
    for module, func in (("experiments.heatmaps", "draw_run"), ("experiments.report", "write_report")):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                echo(f"note: {module} is not available; skipped {func}")
                ok = False
                continue
            raise
        try:
            if func == "draw_run":
                figures = mod.draw_run(run_dir)
            elif isinstance(figures, dict):
                path = mod.write_report(run_dir, figures=figures)  # the figures just drawn, not again
                echo(f"report: {path}")
            else:
                echo(f"report: {mod.write_report(run_dir)}")
        except Exception as e:  # noqa: BLE001  results are kept whatever the drawing does
            echo(f"warning: {module}.{func} failed: {type(e).__name__}: {_one_line(e)}")
            ok = False
    return ok


# --------------------------------------------------------------------------- benchmark


def available_frameworks(frameworks=FRAMEWORKS) -> tuple:
    from .frameworks import missing

    return tuple(f for f in frameworks if not missing(f))


def course_keras_baseline(*, epochs=100, etas=DEFAULT_GRID, lmbdas=DEFAULT_GRID, batch_size=100) -> float:
    """Seconds for Keras alone run the course's way: in this process, for each cell a new
    ``keras.Sequential`` (Conv2D(10, 3x3, relu, l2), MaxPooling2D, Flatten, Dense(50, relu,
    l2), Dense(10, softmax, l2)), ``SGD(learning_rate=eta)``, ``compile``, ``model.fit(X, Y,
    epochs, batch_size, verbose=0)`` and one ``evaluate`` on the test set. Float32 NHWC
    digits, the same split as the grid. Keras's default threading (the course sets none).

    The convolution is ``valid`` like the registry's ``course_cnn`` (the course's Keras
    example writes ``same``), so both sides train the same network.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from keras import layers, regularizers

    from . import datasets

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
    code = ("import json, sys; from experiments.grid import course_keras_baseline as f; "
            "a = json.loads(sys.argv[1]); print('SECONDS', f(**a))")
    args = json.dumps({"epochs": epochs, "etas": list(etas), "lmbdas": list(lmbdas)})
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code, args], env=env, cwd=root, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("SECONDS "):
            return float(line.split()[1])
    raise RuntimeError(f"the Keras baseline failed (exit {proc.returncode}): {_one_line(proc.stderr[-2000:])}")


def bench_grid(*, epochs=100, etas=DEFAULT_GRID, lmbdas=DEFAULT_GRID, frameworks=FRAMEWORKS, executor="process",
               workers=None, dtype="float32", train_eval="every", baseline=True, out=None, progress=True) -> dict:
    """Time the grid of ``frameworks`` with ``executor`` (defaults: the full default grid,
    49 cells x 3 frameworks x 100 epochs on digits), then Keras alone the course's way
    (:func:`course_keras_baseline`, in a fresh process); print both and the ratio.

    The grid run goes to a temporary folder (``out`` keeps it). Smaller ``epochs`` /
    ``etas`` / ``lmbdas`` make a quick check. Returns the times and the ratio.
    """
    import tempfile

    frameworks = available_frameworks(frameworks)
    skipped = sorted(set(FRAMEWORKS) - set(frameworks))
    with tempfile.TemporaryDirectory(prefix="xfw-bench-grid-") as tmp:
        config = GridConfig(frameworks=frameworks, etas=tuple(etas), lmbdas=tuple(lmbdas), epochs=epochs,
                            executor=executor, workers=workers, dtype=dtype, train_eval=train_eval,
                            out=out or tmp, run="bench-grid")
        n = config.n_cells()
        print(f"\ngrid: {len(config.etas)} eta x {len(config.lmbdas)} lambda x {len(frameworks)} frameworks "
              f"({', '.join(frameworks)}) = {n} cells x {epochs} epochs on digits, {dtype}, "
              f"executor {executor} ({1 if executor == 'serial' else config.n_workers} workers), "
              "test evaluation every epoch, train evaluation "
              + ("every epoch" if train_eval == "every" else "after the last epoch")
              + (f"; not installed: {', '.join(skipped)}" if skipped else ""))
        start = time.perf_counter()
        summary = run_grid(config, progress=progress, figures=False, echo=lambda text: None)
        grid_s = time.perf_counter() - start
        from .store import read_cells

        per_fw = read_cells(config.run_dir).groupby("framework", sort=False).seconds.sum()
    print(f"grid: {grid_s:.1f} s for {n} cells ({summary.ok} ok, {summary.diverged} diverged, "
          f"{summary.failed} failed), {grid_s / max(n, 1):.2f} s per cell; seconds inside the cells: "
          + ", ".join(f"{fw} {s:.0f}" for fw, s in per_fw.items())
          + f" (sum {per_fw.sum():.0f})")
    result = {"grid_seconds": grid_s, "cells": n, "frameworks": frameworks, "summary": summary,
              "cell_seconds": {fw: float(s) for fw, s in per_fw.items()}}
    if baseline and "keras" in available_frameworks(("keras",)):
        print(f"course's way: Keras alone, model.fit per cell in one process, {len(config.etas) * len(config.lmbdas)} "
              f"cells x {epochs} epochs ...", flush=True)
        keras_s = _baseline_in_subprocess(epochs, config.etas, config.lmbdas)
        ratio = grid_s / keras_s
        print(f"course's way (Keras alone): {keras_s:.1f} s; all {len(frameworks)} frameworks on the grid runner: "
              f"{grid_s:.1f} s = {ratio:.2f} x the course's Keras time (target <= 0.5)")
        result.update(keras_seconds=keras_s, ratio=ratio)
    elif baseline:
        print("course's way: skipped (keras is not installed)")
    return result
