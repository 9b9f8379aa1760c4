"""Where grid cells run: in this process, in local worker processes, or on Dask.

Every executor takes a picklable function and a list of tasks and yields
``(task, result)`` pairs as the cells finish, in completion order; the caller (the
run's parent process) writes each result at once. Workers run one thread per framework
(:func:`experiments.runtime.limit_threads`), so a cell gives the same numbers in
every executor and with any worker count. A local worker imports a framework when its
first cell or population of that framework starts (:func:`experiments.grid.cells.run_cell`
and :func:`experiments.grid.population.run_population_task` apply the limit): importing
TensorFlow takes 4-5 s here, and a worker that trains no Keras never pays it.

* ``serial``: one cell after the other in this process.
* ``process``: a ``ProcessPoolExecutor`` of ``workers`` processes started with
  ``spawn`` (TensorFlow and PyTorch are not fork-safe). Workers ignore SIGINT: Ctrl-C is
  the parent's business (it cancels what is pending and stops the workers). Each worker
  ends itself when its parent dies (killed with ``kill -9`` included): a watchdog
  thread sees its parent process change. A worker that dies breaks the pool: a fresh
  pool is started and the cells that had not finished are submitted again, up to
  ``RESTARTS`` times per run.
* ``dask``: a ``distributed.Client`` on ``scheduler`` (``tcp://HOST:PORT``), or on a
  ``LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)`` started for
  the run when no address is given.

When workers die (killed, out of memory) more often than an executor can make up for,
:class:`WorkerLost` is raised after every result that did arrive has been yielded.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time

from ..runtime import limit_threads, one_thread_environment
from .cells import remember_datasets
from .population import PopulationExecutor


class WorkerLost(RuntimeError):
    """A worker process died while cells were in flight; their results are lost."""


#: Fresh process pools a run may start after a worker died, before it gives up.
RESTARTS = 3
_WATCH_SECONDS = 0.25


def _watch_parent(parent: int) -> None:
    """End this worker as soon as its parent is gone (it is then re-parented)."""
    while os.getppid() == parent:
        time.sleep(_WATCH_SECONDS)
    os._exit(1)  # no cleanup: nobody is left to receive a result


def _init_worker(parent, datasets):
    # ``parent`` comes from the parent itself: one that died while this worker was still
    # starting is then seen too (os.getppid() would already name the adopting process).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), name="xfw-parent-watchdog", daemon=True).start()
    one_thread_environment()
    limit_threads(())  # NumPy's BLAS; each framework's limit comes with its first unit of work
    remember_datasets(datasets)


class _sigint_ignored:
    """Ignore SIGINT while processes are started (they inherit it); a no-op off the main thread."""

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread
            self.previous = None
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


class SerialExecutor:
    name = "serial"

    def __init__(self, frameworks, workers=1, scheduler=None):
        self.frameworks = tuple(frameworks)

    def __enter__(self):
        limit_threads(self.frameworks)
        return self

    def __exit__(self, *exc):
        return False

    def describe(self) -> str:
        return "serial (this process)"

    def run(self, fn, tasks):
        for task in tasks:
            yield task, fn(task)


class ProcessExecutor:
    name = "process"

    def __init__(self, frameworks, workers, scheduler=None, datasets=None):
        self.frameworks = tuple(frameworks)
        self.workers = int(workers)
        self.datasets = dict(datasets or {})  # handed to every worker at its start
        self.pool = None

    def __enter__(self):
        one_thread_environment()  # inherited by the workers before their first import
        self.pool = self._new_pool()
        self.restarts = 0
        return self

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(os.getpid(), self.datasets))

    def _stop(self):
        # Finished: the workers are idle. Interrupted or failed: drop pending cells. Either
        # way stop the workers now rather than wait for TensorFlow's slow interpreter exit.
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(5)

    def __exit__(self, exc_type, exc, tb):
        if self.pool is None:
            return False
        self._stop()
        self.pool = None
        return False

    def describe(self) -> str:
        return f"process ({self.workers} worker processes)"

    def run(self, fn, tasks):
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        left = list(tasks)
        while left:
            with _sigint_ignored():  # workers start on submit; they inherit the ignored SIGINT
                futures = {self.pool.submit(fn, t): t for t in left}
            order = {f: i for i, f in enumerate(futures)}
            pending = set(futures)
            lost = None
            while pending and lost is None:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in sorted(done, key=order.get):
                    try:
                        result = f.result()
                    except BrokenProcessPool as e:
                        lost = e
                        continue
                    yield futures[f], result
            if lost is None:
                return
            # Results that arrived before the pool broke are done; yield them, rerun the rest.
            finished = [f for f in pending if f.done() and not f.cancelled() and f.exception() is None]
            for f in sorted(finished, key=order.get):
                yield futures[f], f.result()
            done_ids = {id(futures[f]) for f in futures if f.done() and not f.cancelled()
                        and f.exception() is None}
            left = [t for t in left if id(t) not in done_ids]
            if self.restarts >= RESTARTS:
                raise WorkerLost(f"a worker process died ({lost}) after {RESTARTS} fresh starts of the workers; "
                                 f"{len(left)} cells did not finish")
            self.restarts += 1
            self._stop()
            self.pool = self._new_pool()


class DaskExecutor:
    name = "dask"

    def __init__(self, frameworks, workers, scheduler=None):
        self.frameworks = tuple(frameworks)
        self.workers = int(workers)
        self.scheduler = scheduler
        self.client = None
        self.cluster = None

    def __enter__(self):
        from distributed import Client, LocalCluster

        one_thread_environment()  # the local workers inherit it
        if self.scheduler:
            self.client = Client(self.scheduler, timeout="10s", set_as_default=False)
        else:
            # The workers inherit an ignored SIGINT: Ctrl-C is the parent's business (it
            # closes the cluster), not a traceback from every worker.
            with _sigint_ignored():
                self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                            dashboard_address=":0", silence_logs=logging.ERROR)
            self.client = Client(self.cluster, set_as_default=False)
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self.client is not None:
                self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()
        self.client = self.cluster = None
        return False

    def describe(self) -> str:
        if self.scheduler:
            n = len(self.client.scheduler_info().get("workers", {}))
            return f"dask (scheduler {self.scheduler}, {n} workers)"
        return f"dask (LocalCluster, {self.workers} worker processes, 1 thread each)"

    def run(self, fn, tasks):
        from distributed import as_completed

        frameworks = self.frameworks
        futures = {}
        for i, t in enumerate(tasks):
            f = self.client.submit(_dask_cell, fn, frameworks, t, pure=False, retries=0, priority=-i)
            futures[f] = t
        try:
            for f in as_completed(list(futures), loop=self.client.loop):
                try:
                    result = f.result()
                except Exception as e:  # noqa: BLE001  a worker that died: KilledWorker, CommClosedError
                    if type(e).__name__ in ("KilledWorker", "CommClosedError", "FutureCancelledError"):
                        raise WorkerLost(f"a Dask worker died ({type(e).__name__}: {e}); "
                                         "the cells it was running are lost") from None
                    raise
                yield futures[f], result
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending)


def _dask_cell(fn, frameworks, task):
    one_thread_environment()
    limit_threads(frameworks)
    return fn(task)


EXECUTORS = {"serial": SerialExecutor, "process": ProcessExecutor, "dask": DaskExecutor}


def make_executor(name, frameworks, workers=None, scheduler=None, datasets=None):
    """The executor ``name`` (serial, process, dask or population), not yet started (use ``with``).

    ``population`` (:mod:`experiments.grid.population`) sends populations to local worker
    processes, or to Dask when a ``scheduler`` is given. ``datasets``
    (:func:`experiments.grid.cells.datasets_of`) go to local worker processes at their
    start, so that they load no data themselves.
    """
    workers = workers or os.cpu_count() or 1
    if name == "population":
        if scheduler:
            return PopulationExecutor(DaskExecutor(frameworks, workers, scheduler), workers)
        return PopulationExecutor(ProcessExecutor(frameworks, workers, datasets=datasets), workers)
    if name not in EXECUTORS:
        raise ValueError(f"--executor: unknown {name!r}; allowed: {', '.join(EXECUTORS)}, population")
    if name == "process":
        return ProcessExecutor(frameworks, workers, datasets=datasets)
    return EXECUTORS[name](frameworks, workers, scheduler)
