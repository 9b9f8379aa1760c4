"""A whole grid run: every cell of a config that is not finished yet, resumable.

:func:`run_grid` runs every cell of a :class:`~experiments.grid.config.GridConfig` that
is not finished yet in ``<out>/<run>/`` (see :mod:`experiments.grid.store`), writing each
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

import sys
import time
from dataclasses import dataclass

from ..errors import UsageError
from .cells import cell_tasks, one_line, run_cell
from .config import GridConfig, identity_changes
from .executors import WorkerLost, make_executor
from .store import RunStore, git_commit, machine, now, versions

class GridInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says what is kept and how to resume."""


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


def open_run(config: GridConfig) -> RunStore:
    """The run's store after checking that an existing run has the same identity."""
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
    echo = echo or (lambda text: print(text, file=sys.stderr))
    config.validate()
    store = open_run(config)
    tasks = cell_tasks(config)
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
