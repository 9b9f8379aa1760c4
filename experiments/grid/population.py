"""The population executor: all cells of one framework and seed trained as one population.

Every cell of one framework and seed starts from the same weights and sees the same batch
order; only eta and lambda differ. :func:`population_tasks` groups the cells still to run
into :class:`PopulationTask` s (one per framework and seed, cut into chunks of members to
share the NumPy and torch ones among the workers, and when the activations of a whole
population would not fit in :data:`MEMORY_BUDGET`), and
:class:`PopulationExecutor` sends those to worker processes (or to Dask), so a population,
not a cell, is the unit of work. Each worker trains its population at once and
returns one result per cell, in the row and curve format of
:func:`experiments.grid.cells.run_cell`; the executor yields them as ``(task, result)``
pairs, so the runner writes every cell as before.

The populations are :class:`scratch.population.Population` (NumPy),
:class:`torch_models.population.Population` (the spec-built model's modules, batched) and
:class:`keras_models.population.Population` (Keras's own layers, widened), all driven by
:func:`scratch.population.run_population`. Cells of a network with Dropout in torch or
Keras (whose serial trainers draw masks from the framework's own generator), and Keras
cells of a network with a second Conv2D (TensorFlow's grouped convolution is slow), are
trained one after the other inside the same unit of work, with
:func:`~experiments.grid.cells.run_cell`.

An interrupt loses at most the unfinished epochs of the populations in flight: a
population's cells are written when it finishes, and a rerun trains the cells that are
not in ``cells.csv`` yet.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..runtime import limit_threads
from .cells import CellTask, cell_result, curve_row, one_line, run_cell

#: Bytes of activations one population may hold at once; larger ones are cut into chunks.
MEMORY_BUDGET = 1.5e9
#: Frameworks trained as populations; the others run cell by cell inside their unit of work.
POPULATION_FRAMEWORKS = ("scratch", "torch", "keras")
#: Frameworks whose populations are not cut to share them among the workers: a worker's
#: first Keras unit costs it TensorFlow's import and the traces of the compiled functions
#: (about 7 s here), more than a share of the population saves.
WHOLE_FRAMEWORKS = ("keras",)
_EVAL_BATCH = 1000  # the evaluation chunk of every trainer (scratch.model.run_epochs)


@dataclass(frozen=True)
class PopulationTask:
    """The cells of one framework and seed (or a chunk of them), picklable."""

    cells: tuple

    @property
    def framework(self) -> str:
        return self.cells[0].framework

    @property
    def seed(self) -> int:
        return self.cells[0].seed


def member_bytes(task: CellTask, input_shape) -> int:
    """Bytes one member's activations take at the evaluation batch: the outputs of every
    op, the im2col columns of every Conv2D, and their gradients (a generous 3x)."""
    import numpy as np

    import scratch
    from scratch import architectures
    from scratch.layers import Conv2DOp

    model = scratch.build(architectures.get(task.arch), input_shape, dtype=task.dtype)
    floats = 0
    for op in model.ops:
        floats += math.prod(op.output_shape)
        if isinstance(op, Conv2DOp):
            floats += op.im2col_indices.size
    return 3 * floats * np.dtype(task.dtype).itemsize * max(task.batch_size, _EVAL_BATCH)


def population_tasks(tasks, budget: float = MEMORY_BUDGET, workers: int = 1) -> list:
    """The cells of ``tasks`` grouped by framework and seed, cut into chunks of members.

    A population is cut into more chunks when its activations would exceed ``budget``
    bytes. Besides, the populations of the frameworks that start cheaply (NumPy, PyTorch)
    are cut into ``workers`` chunks, so that the workers finish together, while a Keras
    population stays whole (:data:`WHOLE_FRAMEWORKS`), unless there would be fewer units
    than workers. The whole populations come first, then the chunks, every framework's
    first chunk first; cells that do not train as one population (:func:`vectorised`)
    become units of one cell each, after all the populations."""
    from .cells import dataset_of

    groups: dict = {}
    for t in tasks:
        groups.setdefault((t.framework, t.seed), []).append(t)
    plans = {}
    singles = []
    for key, cells in groups.items():
        if not vectorised(cells[0]):
            singles.extend(PopulationTask((t,)) for t in cells)
            continue
        per = member_bytes(cells[0], dataset_of(cells[0]).input_shape)
        plans[key] = (cells, math.ceil(len(cells) * per / budget))

    def units(spread_all: bool):
        whole, chunked = [], []
        for (framework, _), (cells, by_memory) in plans.items():
            spread = 1 if framework in WHOLE_FRAMEWORKS and not spread_all else int(workers)
            chunks = min(len(cells), max(spread, by_memory))
            size = math.ceil(len(cells) / chunks)
            cut = [PopulationTask(tuple(cells[i:i + size])) for i in range(0, len(cells), size)]
            (whole if chunks == 1 else chunked).append(cut)
        order = [c[i] for i in range(max(map(len, chunked), default=0)) for c in chunked if i < len(c)]
        return [c[0] for c in whole] + order

    populations = units(False)
    if len(populations) + len(singles) < workers:
        populations = units(True)
    return populations + singles


def vectorised(task: CellTask) -> bool:
    """Whether the cells of ``task``'s framework and seed train as one population: a
    framework of :data:`POPULATION_FRAMEWORKS`, and for torch and Keras no dropout (their
    serial trainers draw dropout masks from the framework's own generator, cell by cell),
    and for Keras at most one Conv2D (later ones would be TensorFlow's slow grouped ones)."""
    from scratch import architectures, spec

    if task.framework not in POPULATION_FRAMEWORKS:
        return False
    if task.framework == "scratch":
        return True
    layers = architectures.get(task.arch)
    if any(isinstance(l, spec.Dropout) and l.rate > 0 for l in layers):
        return False
    if task.framework == "keras":
        # A Conv2D after the first one is a grouped Conv2D(P*O, groups=P) in the wide Keras
        # network, and TensorFlow's CPU grouped convolution is slow: on the lenet grid the
        # Keras population took 5x the time of its cells one by one (measured 247 s against 49 s).
        return sum(isinstance(l, spec.Conv2D) for l in layers) <= 1
    return True


def run_population_task(ptask: PopulationTask) -> list:
    """Train a population; ``[(cell task, result)]`` in the format of ``run_cell``.

    A problem of the population itself becomes status ``failed`` for each of its cells.
    """
    cells = ptask.cells
    limit_threads((ptask.framework,))  # in a worker, the framework's first unit imports it
    try:
        whole = vectorised(cells[0])
    except Exception:  # noqa: BLE001  e.g. an unknown architecture: run_cell reports it per cell
        whole = False
    if not whole:
        return [(t, run_cell(t)) for t in cells]
    start = time.perf_counter()
    curves = [[] for _ in cells]
    try:
        _train(ptask, curves)
    except Exception as e:  # noqa: BLE001  the population fails, the run goes on
        error = one_line(f"{type(e).__name__}: {e}")
        seconds = (time.perf_counter() - start) / len(cells)
        return [(t, cell_result(t, [], "failed", error, seconds)) for t in cells]
    seconds = (time.perf_counter() - start) / len(cells)  # the population's time, shared out
    return [(t, cell_result(t, c, "ok", None, seconds)) for t, c in zip(cells, curves)]


def _build(ptask, data):
    """(population, x, y, validation) in the framework's own layout, the data checked."""
    from scratch import architectures
    from scratch.data import as_targets

    first = ptask.cells[0]
    layers = architectures.get(first.arch)
    etas, lmbdas = [t.eta for t in ptask.cells], [t.lmbda for t in ptask.cells]
    common = dict(loss=first.loss, optimizer=first.optimizer, dtype=first.dtype, seed=int(first.seed))
    if first.framework == "scratch":
        from scratch.population import Population

        population = Population(layers, data.input_shape, etas, lmbdas, flavor=first.flavor, **common)
        k = population.output_shape[0]
        return (population, data.x_train, as_targets(data.y_train, k, population.dtype),
                (data.x_test, as_targets(data.y_test, k, population.dtype)))
    if first.framework == "torch":
        from torch_models.population import Population
    else:
        from keras_models.population import Population

    population = Population(layers, data.input_shape, etas, lmbdas, init=first.init, **common)
    x, y = population.tensors(data.x_train, data.y_train)
    return population, x, y, population.tensors(data.x_test, data.y_test, "validation x")


def _train(ptask, curves):
    """Train the population of ``ptask``, appending each member's curve rows to ``curves``."""
    from scratch.population import run_population

    from .cells import dataset_of

    first = ptask.cells[0]
    population, x, y, val = _build(ptask, dataset_of(first))
    every = first.train_eval == "every"
    histories = run_population(population, x, y, epochs=first.epochs, batch_size=first.batch_size,
                               seed=int(first.seed), validation=val, evaluate_train=every,
                               on_epoch_end=lambda i, row: curves[i].append(curve_row(ptask.cells[i], row)))
    if not every:  # the last epoch's train metrics of the members still training, as "every" gives them
        live = [i for i, h in enumerate(histories) if h and not h[-1]["diverged"]]
        if live:
            final = population.evaluate_batches(x, y, _EVAL_BATCH)
            for j, i in enumerate(live):
                curves[i][-1]["train_loss"] = float(final["loss"][j])
                curves[i][-1]["train_accuracy"] = float(final["accuracy"][j])


class PopulationExecutor:
    """Populations as the unit of work, on another executor (local processes or Dask).

    ``run(fn, tasks)`` yields ``(cell task, result)`` for every cell as its population
    finishes; ``fn`` (``run_cell``) is what the units of work use for cells of frameworks
    without a population trainer.
    """

    name = "population"

    def __init__(self, inner, workers):
        self.inner, self.workers = inner, workers

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)

    def describe(self) -> str:
        return f"population (one per framework and seed) on {self.inner.describe()}"

    def run(self, fn, tasks):
        for _, results in self.inner.run(run_population_task, population_tasks(tasks, workers=self.workers)):
            yield from results
