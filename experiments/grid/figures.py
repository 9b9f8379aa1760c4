"""The figures of an eta x lambda grid search, drawn from a run folder.

A run folder holds ``cells.csv`` (one row per cell and seed), ``curves.csv`` (one row
per cell, seed and epoch) and ``manifest.json``. :func:`draw_run` reads them and writes
into ``run_dir/figures/``, as PNG and SVG, next to a CSV of the numbers behind each map:

* ``{metric}_{framework}``: train and test accuracy of one framework, as in the course
  ("Final visualization"): seaborn heatmap, ``annot=True``, cmap viridis, eta on the y
  axis (top row = smallest eta, row i = ``etas[i]``), lambda on the x axis.
* ``{metric}_side_by_side``: every framework in one figure on ONE colour scale (shared
  vmin/vmax, one colour bar).
* ``{metric}_diff_{other}_minus_scratch``: ``other - scratch``, diverging cmap centred at
  0 with symmetric limits; cells where ``|difference| > margin`` are outlined.
* ``curves``: training/test loss (log scale) and accuracy over the epochs, one column per
  framework, one line per (eta, lambda) for the best few cells.

With several seeds a cell shows the mean over its seeds; the cell counts as diverged if
any seed diverged, else as failed if any seed failed. Diverged and failed cells are
masked (no colour, no number) and marked: a cross-hatched background with ``div``, or a
line-hatched background with ``fail``. Cells not (yet) in ``cells.csv`` stay blank grey.

Everything is drawn with matplotlib's object API on Agg canvases (``Figure`` +
``FigureCanvasAgg``), never through pyplot, so nothing needs a display and no figure
outlives its save. The numbers come from :mod:`experiments.grid.tables`, the files from
:mod:`experiments.grid.store`; every file is written atomically (:mod:`experiments.files`).
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ..files import atomic_write, atomic_write_with
from .store import CELLS, CURVES, MANIFEST, DamagedFile, cells_frame, curves_frame, describe, read_run
from .labels import colour_limits, metric_name, pow10_label, seed_note, two_line_title
from .tables import (BASE, METRICS, SAME_VALUE_RTOL, as_cells, cell_summary, difference_table, framework_order,
                     grid_axes, grid_table, status_table)

# How a masked cell is marked: hatch of the background patch, and its text.
_MARKS = {
    "diverged": dict(hatch="xx", text="div", color="#8b0000"),
    "failed": dict(hatch="//", text="fail", color="0.1"),
}


def _difference_marks(status_other: pd.DataFrame, status_base: pd.DataFrame, other: str,
                      base: str) -> np.ndarray:
    """Per cell of a difference map: "" (drawn), or (kind, text) for a masked cell."""
    marks = np.empty(status_other.shape, dtype=object)
    for i in range(marks.shape[0]):
        for j in range(marks.shape[1]):
            so, sb = status_other.iat[i, j], status_base.iat[i, j]
            mark = None
            for kind in ("diverged", "failed"):
                if so == kind or sb == kind:
                    who = "" if so == sb else f"\n{other if so == kind else base}"
                    mark = (kind, _MARKS[kind]["text"] + who)
                    break
            if mark is None and "missing" in (so, sb):
                mark = ("missing", "")
            marks[i, j] = mark
    return marks


# --------------------------------------------------------------------------- drawing

def _new_figure(width: float, height: float, dpi: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _cell_size(n_rows: int, n_cols: int) -> tuple[float, float]:
    """Width and height in inches of one heatmap panel."""
    return max(0.95 * max(n_cols, 1), 3.0), max(0.62 * max(n_rows, 1), 1.8)


def _heatmap_layout(n_panels: int, n_rows: int, n_cols: int, dpi: float, *, suptitle: bool = False):
    """A figure with ``n_panels`` heatmap axes in a row and one colour bar axis at the right.

    Fixed margins in inches (no tight_layout, which would cost one more draw per figure).
    The colour bar axis is labelled ``"colorbar"``.
    """
    panel_w, panel_h = _cell_size(n_rows, n_cols)
    left, gap, cbar_gap, cbar_w, right = 0.95, 0.3, 0.25, 0.2, 1.0
    bottom, top = 0.85, 0.7 + (0.3 if suptitle else 0.0)
    n = max(n_panels, 1)
    width = left + n * panel_w + (n - 1) * gap + cbar_gap + cbar_w + right
    height = bottom + panel_h + top
    figure = _new_figure(width, height, dpi)
    axes = [figure.add_axes(((left + k * (panel_w + gap)) / width, bottom / height, panel_w / width,
                             panel_h / height)) for k in range(n)]
    cbar_x = left + n * panel_w + (n - 1) * gap + cbar_gap
    cbar_ax = figure.add_axes((cbar_x / width, bottom / height, cbar_w / width, panel_h / height))
    cbar_ax.set_label("colorbar")
    return figure, axes, cbar_ax


def _draw_heatmap(ax, values: pd.DataFrame, marks, *, cmap, vmin, vmax, fmt, center=None,
                  cbar=True, cbar_ax=None, cbar_label=None, ylabel=True, outline=None):
    """seaborn heatmap of ``values`` on ``ax``; masked cells get ``marks[i, j] = (kind, text)``."""
    import seaborn as sns  # seaborn imports pyplot; keep it out of module import

    data = np.asarray(values, dtype=float)
    mask = ~np.isfinite(data)
    n_rows, n_cols = data.shape
    fontsize = 9 if n_cols <= 8 else 7
    with warnings.catch_warnings():  # seaborn 0.13 calls Colormap.set_bad when centring
        warnings.filterwarnings("ignore", message="The set_bad function", category=PendingDeprecationWarning)
        sns.heatmap(
            data, mask=mask, annot=True, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, center=center,
            ax=ax, cbar=cbar, cbar_ax=cbar_ax, cbar_kws={"label": cbar_label} if cbar else None,
            xticklabels=[pow10_label(v) for v in values.columns],
            yticklabels=[pow10_label(v) for v in values.index] if ylabel else False,
            linewidths=0.5, linecolor="white", annot_kws={"fontsize": fontsize},
        )
    ax.set_xlabel(r"$\lambda$")
    ax.set_ylabel(r"$\eta$" if ylabel else "")
    ax.tick_params(axis="y", labelrotation=0)
    ax.tick_params(axis="x", labelrotation=0)
    ax.set_facecolor("white")
    for i in range(n_rows):
        for j in range(n_cols):
            if not mask[i, j]:
                continue
            mark = marks[i][j] if marks is not None else None
            kind, text = mark if mark else ("missing", "")
            style = _MARKS.get(kind)
            if style is None:  # no result (yet): plain light grey, no text
                ax.add_patch(Rectangle((j, i), 1, 1, facecolor="0.93", edgecolor="white",
                                       linewidth=0.5, zorder=0.5, gid="missing"))
                continue
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor="0.9", edgecolor="0.6", hatch=style["hatch"],
                                   linewidth=0, zorder=0.5, gid=kind))
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=fontsize,
                    fontweight="bold", color=style["color"], gid=kind,
                    bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.8))
    if outline is not None:
        for i in range(n_rows):
            for j in range(n_cols):
                if outline[i][j]:
                    ax.add_patch(Rectangle((j + 0.04, i + 0.04), 0.92, 0.92, fill=False,
                                           edgecolor="black", linewidth=2.0, zorder=3, gid="disagree"))


def _status_marks(status: pd.DataFrame) -> np.ndarray:
    marks = np.empty(status.shape, dtype=object)
    for i in range(status.shape[0]):
        for j in range(status.shape[1]):
            kind = status.iat[i, j]
            marks[i, j] = (kind, _MARKS[kind]["text"]) if kind in _MARKS else (
                ("missing", "") if kind == "missing" else None)
    return marks


def _footnote(figure: Figure, kinds) -> None:
    notes = []
    if "diverged" in kinds:
        notes.append("div = diverged (NaN or inf loss)")
    if "failed" in kinds:
        notes.append("fail = run failed")
    if "missing" in kinds:
        notes.append("blank grey = no result")
    if notes:
        figure.text(0.01, 0.005, ";  ".join(notes), fontsize=7, color="0.3", ha="left", va="bottom")


def _kinds(marks) -> set:
    return {m[0] for m in np.asarray(marks, dtype=object).ravel() if m}


def heatmap_figure(cells, framework: str, metric: str = "test_accuracy", *, etas=None, lmbdas=None,
                   fmt: str = ".3f", cmap: str = "viridis", dpi: float = 100) -> Figure:
    """One framework, one metric, as in the course (viridis, annotated, eta down, lambda across)."""
    cells = as_cells(cells)
    if etas is None or lmbdas is None:
        etas, lmbdas = grid_axes(cells)
    table = grid_table(cells, framework, metric, etas=etas, lmbdas=lmbdas)
    marks = _status_marks(status_table(cells, framework, etas=etas, lmbdas=lmbdas))
    figure, (ax,), cbar_ax = _heatmap_layout(1, len(etas), len(lmbdas), dpi)
    ax.set_label(f"heatmap:{framework}")
    vmin, vmax = colour_limits(table)
    _draw_heatmap(ax, table, marks, cmap=cmap, vmin=vmin, vmax=vmax, fmt=fmt, cbar_ax=cbar_ax,
                  cbar_label=metric_name(metric))
    ax.set_title(two_line_title(f"{framework}: {metric_name(metric)}", seed_note(cells, [framework])))
    _footnote(figure, _kinds(marks))
    return figure


def side_by_side_figure(cells, metric: str = "test_accuracy", frameworks=None, *, etas=None, lmbdas=None,
                        fmt: str = ".3f", cmap: str = "viridis", dpi: float = 100) -> Figure:
    """All frameworks side by side on ONE colour scale (shared vmin/vmax, one colour bar).

    Heatmap axes are labelled ``"heatmap:<framework>"`` and the colour bar ``"colorbar"``
    (``Axes.get_label()``), so callers can find them.
    """
    cells = as_cells(cells)
    frameworks = list(frameworks) if frameworks is not None else framework_order(cells)
    if etas is None or lmbdas is None:
        etas, lmbdas = grid_axes(cells)
    tables = [grid_table(cells, f, metric, etas=etas, lmbdas=lmbdas) for f in frameworks]
    marks = [_status_marks(status_table(cells, f, etas=etas, lmbdas=lmbdas)) for f in frameworks]
    vmin, vmax = colour_limits(*tables)
    figure, axes, cbar_ax = _heatmap_layout(len(frameworks), len(etas), len(lmbdas), dpi, suptitle=True)
    for k, (ax, framework, table, mark) in enumerate(zip(axes, frameworks, tables, marks)):
        ax.set_label(f"heatmap:{framework}")
        _draw_heatmap(ax, table, mark, cmap=cmap, vmin=vmin, vmax=vmax, fmt=fmt, cbar=(k == 0),
                      cbar_ax=cbar_ax if k == 0 else None, cbar_label=metric_name(metric),
                      ylabel=(k == 0))
        ax.set_title(f"{framework}{seed_note(cells, [framework])}")
    figure.suptitle(f"{metric_name(metric).capitalize()}: all frameworks on one colour scale")
    _footnote(figure, set().union(*[_kinds(m) for m in marks]) if marks else set())
    return figure


def difference_figure(cells, other: str, metric: str = "test_accuracy", *, base: str = BASE,
                      margin: float = 0.05, etas=None, lmbdas=None, fmt: str = "+.3f",
                      cmap: str = "RdBu_r", dpi: float = 100) -> Figure:
    """``other - base`` of ``metric``: diverging cmap centred at 0, symmetric limits.

    The limits are +-max(|difference|, margin), so differences below the margin stay
    pale; cells with ``|difference| > margin`` are outlined in black. A cell where either
    framework diverged or failed is masked and marked, naming the framework when only
    one did.
    """
    cells = as_cells(cells)
    if etas is None or lmbdas is None:
        etas, lmbdas = grid_axes(cells)
    table = difference_table(cells, other, metric, base=base, etas=etas, lmbdas=lmbdas)
    marks = _difference_marks(status_table(cells, other, etas=etas, lmbdas=lmbdas),
                              status_table(cells, base, etas=etas, lmbdas=lmbdas), other, base)
    vmin, vmax = colour_limits(table, symmetric=True, floor=margin)
    data = table.to_numpy(dtype=float)
    outline = np.isfinite(data) & (np.abs(data) > margin)
    figure, (ax,), cbar_ax = _heatmap_layout(1, len(etas), len(lmbdas), dpi)
    ax.set_label(f"heatmap:{other}-{base}")
    _draw_heatmap(ax, table, marks, cmap=cmap, vmin=vmin, vmax=vmax, center=0.0, fmt=fmt, cbar_ax=cbar_ax,
                  cbar_label=f"{other} \u2212 {base}", outline=outline)
    ax.set_title(two_line_title(f"{metric_name(metric).capitalize()}: {other} \u2212 {base}",
                                 seed_note(cells, [other, base])))
    kinds = _kinds(marks)
    _footnote(figure, kinds)
    if outline.any():
        figure.text(0.99, 0.005, f"outlined: |difference| > {margin:g}", fontsize=7, color="0.3",
                    ha="right", va="bottom")
    return figure


def _best_cells(cells, frameworks, etas, lmbdas, top: int) -> list[tuple[float, float]]:
    """The ``top`` (eta, lambda) cells by mean test accuracy, averaged over frameworks."""
    scores = []
    for framework in frameworks:
        summary = cell_summary(cells, framework, etas=etas, lmbdas=lmbdas)
        ok = summary[summary["status"] == "ok"]
        scores.append(ok[["eta", "lmbda", "test_accuracy"]])
    if not scores:
        return []
    joined = pd.concat(scores).dropna(subset=["test_accuracy"])
    if joined.empty:
        return []
    ranked = (joined.groupby(["eta", "lmbda"], as_index=False)["test_accuracy"].mean()
              .sort_values(["test_accuracy", "eta", "lmbda"], ascending=[False, True, True]))
    return [(float(r.eta), float(r.lmbda)) for r in ranked.head(top).itertuples(index=False)]


def curves_figure(curves: pd.DataFrame, cells, frameworks=None, *, top: int = 5, etas=None, lmbdas=None,
                  dpi: float = 100) -> Figure:
    """Loss (log scale) and accuracy over the epochs: one column per framework, one line
    per (eta, lambda) of the ``top`` cells (best mean test accuracy over the frameworks),
    the same colour for a cell in every column; curves averaged over seeds.

    Top row: the data loss (no L2 penalty) on the training set, solid, and on the test
    set, dashed, both evaluated after each epoch (the same quantity, so the two lines
    compare; the running mean of the penalised objective, ``loss`` in curves.csv, is not
    drawn). Bottom row: train accuracy, solid, and test accuracy, dashed. With
    ``train_eval = "last"`` the training set is evaluated after the last epoch only: its
    curves are one point.
    """
    cells = as_cells(cells)
    frameworks = list(frameworks) if frameworks is not None else framework_order(cells)
    frameworks = [f for f in frameworks if (curves["framework"] == f).any()]
    if etas is None or lmbdas is None:
        etas, lmbdas = grid_axes(cells)
    chosen = _best_cells(cells, frameworks, etas, lmbdas, top)
    n = max(len(frameworks), 1)
    figure = _new_figure(3.6 * n + 2.4, 5.6, dpi)
    axes = figure.subplots(2, n, sharex=True, sharey="row", squeeze=False)
    colours = [f"C{k % 10}" for k in range(len(chosen))]
    curve_eta = np.array([_snap(v, etas) for v in curves["eta"]], dtype=float)
    curve_lmbda = np.array([_snap(v, lmbdas) for v in curves["lmbda"]], dtype=float)
    for col, framework in enumerate(frameworks):
        top_ax, bottom_ax = axes[0, col], axes[1, col]
        top_ax.set_label(f"loss:{framework}")
        bottom_ax.set_label(f"accuracy:{framework}")
        for colour, (eta, lmbda) in zip(colours, chosen):
            selected = curves[(curves["framework"] == framework).to_numpy()
                              & np.isclose(curve_eta, eta, rtol=SAME_VALUE_RTOL, atol=0)
                              & np.isclose(curve_lmbda, lmbda, rtol=SAME_VALUE_RTOL, atol=0)]
            if selected.empty:
                continue
            mean = selected.groupby("epoch").mean(numeric_only=True).sort_index()
            epochs = mean.index.to_numpy(dtype=float)
            for split, style in (("train", "-"), ("test", "--")):
                values = mean[f"{split}_loss"].to_numpy(dtype=float)
                values = np.where(np.isfinite(values) & (values > 0), values, np.nan)
                top_ax.plot(epochs, values, style, color=colour, linewidth=1.4, marker=".", gid=f"{split}_loss")
                bottom_ax.plot(epochs, mean[f"{split}_accuracy"].to_numpy(dtype=float), style, color=colour,
                               linewidth=1.4, marker=".", gid=f"{split}_accuracy")
        top_ax.set_yscale("log")
        top_ax.set_title(framework)
        top_ax.grid(True, which="both", alpha=0.3)
        bottom_ax.grid(True, alpha=0.3)
        bottom_ax.set_xlabel("epoch")
        bottom_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("data loss, no L2 (log scale)")
    axes[1, 0].set_ylabel("accuracy")
    handles = [Line2D([], [], color=c, linewidth=1.6,
                      label=f"\u03b7={eta:g}, \u03bb={lmbda:g}") for c, (eta, lmbda) in zip(colours, chosen)]
    handles += [Line2D([], [], color="0.3", linestyle="-", label="solid: training set"),
                Line2D([], [], color="0.3", linestyle="--", label="dashed: test set")]
    figure.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    figure.suptitle(f"Loss and accuracy over the epochs, best {len(chosen)} cells"
                    f"{seed_note(cells, frameworks)}")
    figure.subplots_adjust(left=1.1 / figure.get_figwidth(), right=1 - 2.2 / figure.get_figwidth(),
                           bottom=0.1, top=0.88, wspace=0.08, hspace=0.1)
    return figure


def _snap(value: float, axis: list[float]) -> float:
    for candidate in axis:
        if math.isclose(candidate, value, rel_tol=SAME_VALUE_RTOL, abs_tol=0.0):
            return candidate
    return float(value)


# --------------------------------------------------------------------------- saving

def _save_figure(figure: Figure, folder: Path, stem: str, dpi: float) -> dict[str, Path]:
    out = {}
    with rc_context({"svg.hashsalt": "xfw", "svg.fonttype": "path"}):
        for fmt in ("png", "svg"):
            path = folder / f"{stem}.{fmt}"
            metadata = {"Date": None} if fmt == "svg" else None
            atomic_write_with(path, lambda tmp: figure.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata))
            out[f"{stem}.{fmt}"] = path
    figure.clear()  # figures are never registered with pyplot: clearing frees everything
    return out


def _save_table(table: pd.DataFrame, folder: Path, stem: str, **kwargs) -> dict[str, Path]:
    path = folder / f"{stem}.csv"
    atomic_write_with(path, lambda tmp: table.to_csv(tmp, **kwargs))
    return {f"{stem}.csv": path}


def draw_run(run_dir, *, margin: float = 0.05, dpi: float = 100, top_curves: int = 5) -> dict[str, Path]:
    """Draw every figure of a run into ``run_dir/figures/``; return ``{file name: path}``.

    Keys are file names (``"test_accuracy_scratch.png"``, ``"...svg"``, ``"...csv"``).
    Frameworks absent from ``cells.csv`` are skipped; difference maps are drawn only for
    frameworks present together with scratch. Each heatmap has a CSV beside it with the
    exact numbers (rows eta, columns lambda; empty = NaN); ``status_<framework>.csv``
    gives ok/diverged/failed/missing per cell.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CELLS).is_file():
        raise FileNotFoundError(f"{run_dir / CELLS}: no {CELLS} in this run folder")
    files = read_run(run_dir)  # everything validated before anything is drawn
    if files.incomplete:
        first = describe(sorted(files.incomplete)[0])
        raise DamagedFile(f"{run_dir / CURVES}: the curves of {len(files.incomplete)} finished cells are missing or "
                          f"incomplete (e.g. {first}); run the grid again with the same options to recompute them")
    cells, curves, manifest = cells_frame(files), curves_frame(files), files.manifest or {}
    folder = run_dir / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    frameworks = framework_order(cells, manifest)
    etas, lmbdas = grid_axes(cells, manifest)
    axes = dict(etas=etas, lmbdas=lmbdas)
    out: dict[str, Path] = {}
    csv_kwargs = dict(index_label="eta", float_format=None)

    for framework in frameworks:
        out.update(_save_table(status_table(cells, framework, **axes), folder, f"status_{framework}",
                               index_label="eta"))
        for metric in METRICS:
            stem = f"{metric}_{framework}"
            out.update(_save_table(grid_table(cells, framework, metric, **axes), folder, stem, **csv_kwargs))
            out.update(_save_figure(heatmap_figure(cells, framework, metric, dpi=dpi, **axes), folder, stem, dpi))

    if frameworks:
        for metric in METRICS:
            stem = f"{metric}_side_by_side"
            stacked = pd.concat({f: grid_table(cells, f, metric, **axes) for f in frameworks},
                                names=["framework", "eta"])
            out.update(_save_table(stacked, folder, stem))
            out.update(_save_figure(side_by_side_figure(cells, metric, frameworks, dpi=dpi, **axes),
                                    folder, stem, dpi))

    if BASE in frameworks:
        for other in (f for f in frameworks if f != BASE):
            for metric in METRICS:
                stem = f"{metric}_diff_{other}_minus_{BASE}"
                out.update(_save_table(difference_table(cells, other, metric, **axes), folder, stem,
                                       **csv_kwargs))
                out.update(_save_figure(difference_figure(cells, other, metric, margin=margin, dpi=dpi, **axes),
                                        folder, stem, dpi))

    if curves is not None and not curves.empty and frameworks:
        figure = curves_figure(curves, cells, frameworks, top=top_curves, dpi=dpi, **axes)
        out.update(_save_figure(figure, folder, "curves", dpi))

    index = {"margin": margin, "dpi": dpi, "top_curves": top_curves, "inputs": _input_stamp(run_dir),
             "files": sorted(out)}
    atomic_write(folder / INDEX, json.dumps(index, indent=1) + "\n")
    return out


INDEX = "index.json"  # in figures/: what draw_run drew, from which inputs, with which margin


def _input_stamp(run_dir: Path) -> dict:
    stamp = {}
    for name in (CELLS, CURVES, MANIFEST):
        path = Path(run_dir) / name
        stamp[name] = [path.stat().st_size, path.stat().st_mtime_ns] if path.is_file() else None
    return stamp


def drawn_figures(run_dir, *, margin: float = 0.05) -> dict[str, Path] | None:
    """The figures of the last :func:`draw_run`, if they are current: drawn with this
    ``margin`` from the run's present cells.csv, curves.csv and manifest.json, and all
    still there. None otherwise (draw again)."""
    folder = Path(run_dir) / "figures"
    try:
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if index.get("margin") != margin or index.get("inputs") != _input_stamp(Path(run_dir)):
        return None
    files = {name: folder / name for name in index.get("files", [])}
    return files if all(p.is_file() for p in files.values()) else None
