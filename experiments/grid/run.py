"""A whole grid run: every cell of a config that is not finished yet, resumable.

:func:`run_grid` runs every cell of a :class:`~experiments.grid.config.GridConfig` that
is not finished yet in ``<out>/<run>/`` (see :mod:`experiments.grid.store`), writing each
result as soon as it arrives:

* a cell whose training loss becomes NaN or inf is stored with status ``diverged``
  and the epoch it happened; a cell that raises is stored ``failed`` with the error
  (and reruns next time); the run goes on in both cases;
* Ctrl-C or SIGTERM stops the run: pending cells are cancelled, workers stopped, the
  session marked ``interrupted``; :class:`GridInterrupted` (a ``KeyboardInterrupt``) is
  raised and the same command resumes;
* a worker that dies is replaced and its cells run again (a bounded number of times,
  :mod:`experiments.grid.executors`); when that is not enough the run stops the same way
  with :class:`GridAborted`;
* one session per run at a time (:mod:`experiments.grid.lock`): a second one is refused
  at once, naming the holder; a session that was killed is marked ``killed`` by the next.
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import time
from dataclasses import dataclass

from ..errors import UsageError
from .cells import cell_tasks, datasets_of, one_line, remember_dataset, run_cell
from .config import IDENTITY_FIELDS, GridConfig, identity_changes
from .executors import WorkerLost, make_executor
from .lock import RunLock, holder_text
from .provenance import git_commit, machine, now, versions
from .store import CELLS, MANIFEST, Grid, RunStore, read_run

class GridInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, ``signal`` 15) during a run; the message says what is kept and
    how to resume."""

    def __init__(self, message, signal_number=signal.SIGINT):
        super().__init__(message)
        self.signal = int(signal_number)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the run's handler."""


class GridAborted(RuntimeError):
    """A worker died; finished cells are kept and the same command resumes."""


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


def open_run(config: GridConfig, data_sha256: str | None = None) -> RunStore:
    """The run's store after checking that an existing run has the same identity, and
    that every cell on disk was made with it (even when the manifest is lost)."""
    new_hash = config.identity_hash(data_sha256)
    manifest_path = os.path.join(config.run_dir, MANIFEST)
    files = read_run(config.run_dir, grid=None) if os.path.isdir(config.run_dir) else None
    manifest = files.manifest if files else None
    hashes = {new_hash}
    if manifest is not None:
        config_part = manifest.get("config") or {}
        old = manifest.get("identity") or {k: config_part.get(k) for k in IDENTITY_FIELDS}
        changes = identity_changes(old, config.identity(data_sha256))
        if changes:
            raise UsageError(
                f"--run: the run {config.run_name!r} in {config.run_dir} was made with another configuration "
                f"({'; '.join(changes)}); choose a new --run name (or --out folder) for the new configuration, "
                "or delete that folder to start it again")
        hashes |= {"", manifest.get("config_hash") or ""}  # rows of older versions of this run
    elif files is not None:
        strangers = [(k, r["config_hash"]) for k, r in files.cells.items() if r["config_hash"] != new_hash]
        if strangers:
            (key, other), n = strangers[0], len(strangers)
            made = f"config hash {other}" if other else "no config hash"
            raise UsageError(
                f"--run: {os.path.join(config.run_dir, CELLS)} holds {n} cells not made with this configuration "
                f"(e.g. {key[0]} eta={key[1]!r} lambda={key[2]!r} seed={key[3]}: {made}; this one's is {new_hash}) "
                f"and {manifest_path} is missing; choose a new --run name, or delete that folder to start again")
    grid = Grid(config.frameworks, config.etas, config.lmbdas, config.seeds, frozenset(hashes))
    store = RunStore(config.run_dir, grid=grid)
    store.stamp(new_hash)
    return store


def _on_sigterm(signum, frame):
    raise _Terminated()


class _sigterm_raises:
    """SIGTERM raises in the main thread for the run's duration (a no-op elsewhere), so a
    terminated run stops its workers and records the stop like Ctrl-C."""

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread
            self.previous = None
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False


def run_grid(config: GridConfig, *, progress: bool = True, figures: bool = True, on_cell_done=None,
             echo=None) -> RunSummary:
    """Run (or resume) the grid of ``config``; see the module docstring.

    ``on_cell_done(row)`` is called after each cell is written (tests use it to stop a
    run). ``echo`` prints the status lines (default: to stderr).
    """
    echo = echo or (lambda text: print(text, file=sys.stderr))
    data = config.validate()
    fingerprint = data.fingerprint() if data is not None else None
    if data is not None:  # the cells' data set, loaded once in this process
        remember_dataset(cell_tasks(config)[0], data)
    try:
        lock = RunLock(config.run_dir, config.run_name)
        with lock, _sigterm_raises():
            if lock.previous:
                echo(f"{config.run_dir}: taking the run over from {holder_text(lock.previous)}, which has ended")
            return _run_locked(config, fingerprint, progress, figures, on_cell_done, echo)
    except _Terminated:  # between sessions' bookkeeping: nothing half written (atomic files)
        raise GridInterrupted("terminated; run the same command again to resume", signal.SIGTERM) from None
    except OSError as e:
        raise UsageError(f"--out: cannot write {e.filename or config.run_dir}: {e.strerror or e}; "
                         "give a writable --out folder") from None


def _run_locked(config, fingerprint, progress, figures, on_cell_done, echo) -> RunSummary:
    store = open_run(config, fingerprint)
    tasks = cell_tasks(config)
    done = store.done()
    todo = [t for t in tasks if t.key not in done]
    summary = RunSummary(run_dir=config.run_dir, total=len(tasks), skipped=len(tasks) - len(todo))
    config_hash = config.identity_hash(fingerprint)

    manifest = store.read_manifest() or {}
    stamp = now()
    sessions = manifest.get("sessions") or []
    for old in sessions:  # we hold the lock: a session still "running" was killed
        if isinstance(old, dict) and old.get("status") == "running":
            old["status"] = "killed"
    session = {"started": stamp, "finished": None, "status": "running", "executor": config.executor,
               "workers": config.n_workers, "scheduler": config.scheduler, "cells_to_run": len(todo),
               "pid": os.getpid(), "host": socket.gethostname()}
    manifest = {
        "run": config.run_name,
        "config": {**config.to_dict(), "run": config.run_name},
        "identity": config.identity(fingerprint),
        "config_hash": config_hash,
        "data_sha256": fingerprint,
        "versions": versions(),
        "git_commit": None,
        "git_dirty": None,
        "machine": machine(),
        "started": manifest.get("started") or stamp,
        "finished": None,
        "status": "running",
        "cells": {"total": len(tasks), "done": len(done)},
        "sessions": sessions + [session],
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

    def kept():
        return f"{len(store.done())} of {len(tasks)} cells are done and kept in {config.run_dir}"

    if store.incomplete:
        echo(f"{config.run_dir}: {len(store.incomplete)} finished cells have missing or incomplete curves in "
             "curves.csv; running them again")
    if summary.skipped:
        echo(f"{config.run_dir}: {summary.skipped} of {len(tasks)} cells already done; running the other {len(todo)}")
    start = time.perf_counter()
    bar = None
    try:
        if todo:
            executor = make_executor(config.executor, config.frameworks, config.n_workers, config.scheduler,
                                     datasets=datasets_of(todo[:1]))
            with executor:
                echo(f"{config.run_name}: {len(todo)} cells ({', '.join(config.frameworks)}; "
                     f"{len(config.etas)} eta x {len(config.lmbdas)} lambda x {len(config.seeds)} seed; "
                     f"{config.epochs} epochs) on {executor.describe()}")
                bar = _progress(len(todo), progress)
                for task, result in executor.run(run_cell, todo):
                    row = {**result["row"], "config_hash": config_hash}
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
        if isinstance(e, WorkerLost):
            raise GridAborted(f"{e}; {kept()}; run the same command again to resume") from None
        what, number = ("terminated", signal.SIGTERM) if isinstance(e, _Terminated) else ("interrupted",
                                                                                          signal.SIGINT)
        raise GridInterrupted(f"{what}; {kept()}; run the same command again to resume", number) from None
    except OSError as e:
        _close(bar)
        try:
            finish("interrupted")
        except OSError:
            pass  # the folder cannot be written at all: the message says so
        raise UsageError(f"cannot write {e.filename or config.run_dir}: {e.strerror or e}; {kept()}; make the "
                         "folder writable and run the same command again to resume") from None
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
    """Heatmaps and the report, when there is something to draw."""
    if not figures or not store.cells:
        return
    draw_figures(store.run_dir, echo)


def draw_figures(run_dir, echo=None) -> bool:
    """Draw the figures and write the report of ``run_dir``; a failure is reported, not
    raised (the results are kept whatever the drawing does). True when both worked."""
    from .figures import draw_run
    from .report import write_report

    echo = echo or (lambda text: print(text, file=sys.stderr))
    try:
        figures = draw_run(run_dir)
        echo(f"report: {write_report(run_dir, figures=figures)}")  # the figures just drawn, not again
    except Exception as e:  # noqa: BLE001
        echo(f"warning: drawing the figures or the report failed: {type(e).__name__}: {one_line(e)}")
        return False
    return True
