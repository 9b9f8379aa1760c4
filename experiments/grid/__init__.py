"""Eta x lambda grid searches in every framework, resumable, drawn as seaborn heatmaps.

Modules, in the order data flows through them:

* :mod:`.config`     :class:`GridConfig`: every option, from TOML and/or the command line
* :mod:`.cells`      :class:`CellTask`, the cells of a config, one cell's training
* :mod:`.executors`  where cells run: serial, local processes, Dask
* :mod:`.run`        :func:`run_grid`: a whole run, resumable, interrupt-safe
* :mod:`.store`      the run folder's files: the only reader and writer
* :mod:`.tables`     the pandas tables behind the maps
* :mod:`.figures`    the heatmaps and curves (matplotlib + seaborn)
* :mod:`.report`     ``report.md``
"""
from .cells import CellTask, cell_tasks, run_cell
from .config import DEFAULT_GRID, GridConfig, identity_changes
from .run import GridAborted, GridInterrupted, RunSummary, draw_figures, run_grid

__all__ = ["CellTask", "cell_tasks", "run_cell", "DEFAULT_GRID", "GridConfig", "identity_changes", "GridAborted",
           "GridInterrupted", "RunSummary", "draw_figures", "run_grid"]
