"""Heatmaps of an eta x lambda grid search, drawn from a run folder.

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
outlives its save.
"""
from __future__ import annotations

import json
import math
import os
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

__all__ = [
    "METRICS", "CELL_COLUMNS", "CURVE_COLUMNS", "read_cells", "read_curves", "read_manifest",
    "framework_order", "grid_axes", "cell_summary", "grid_table", "status_table",
    "difference_table", "heatmap_figure", "side_by_side_figure", "difference_figure",
    "curves_figure", "draw_run", "drawn_figures", "pow10_label",
]

BASE = "scratch"
CANONICAL_ORDER = ("scratch", "keras", "torch")
METRICS = ("train_accuracy", "test_accuracy")
METRIC_NAMES = {
    "train_accuracy": "train accuracy", "test_accuracy": "test accuracy",
    "train_loss": "train loss", "test_loss": "test loss", "seconds": "seconds",
}
CELL_COLUMNS = ("framework", "eta", "lmbda", "seed", "epochs", "train_loss", "train_accuracy",
                "test_loss", "test_accuracy", "status", "diverged_epoch", "seconds", "error")
CURVE_COLUMNS = ("framework", "eta", "lmbda", "seed", "epoch", "loss", "train_loss",
                 "train_accuracy", "test_loss", "test_accuracy")
_NUMERIC_CELL = ("eta", "lmbda", "epochs", "train_loss", "train_accuracy", "test_loss",
                 "test_accuracy", "diverged_epoch", "seconds")
_NUMERIC_CURVE = ("eta", "lmbda", "epoch", "loss", "train_loss", "train_accuracy",
                  "test_loss", "test_accuracy")

# How a masked cell is marked: hatch of the background patch, and its text.
_MARKS = {
    "diverged": dict(hatch="xx", text="div", color="#8b0000"),
    "failed": dict(hatch="//", text="fail", color="0.1"),
}
_RTOL = 1e-9  # two grid values closer than this (relative) are the same value


# --------------------------------------------------------------------------- reading

def _read_csv(path: Path, columns, numeric) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"framework": str, "status": str, "error": str},
                        keep_default_na=True)
    for column in columns:
        if column not in frame.columns:
            frame[column] = np.nan
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["framework"] = frame["framework"].astype(str).str.strip()
    return frame


def read_cells(run_dir) -> pd.DataFrame:
    """``run_dir/cells.csv`` as a DataFrame, numeric columns as floats, status lower case."""
    path = Path(run_dir) / "cells.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no cells.csv in this run folder")
    cells = _read_csv(path, CELL_COLUMNS, _NUMERIC_CELL)
    cells["status"] = cells["status"].fillna("failed").astype(str).str.strip().str.lower()
    cells["error"] = cells["error"].fillna("").astype(str)
    return cells


def read_curves(run_dir) -> pd.DataFrame | None:
    """``run_dir/curves.csv`` as a DataFrame, or None when the run has none."""
    path = Path(run_dir) / "curves.csv"
    if not path.is_file():
        return None
    return _read_csv(path, CURVE_COLUMNS, _NUMERIC_CURVE)


def read_manifest(run_dir) -> dict:
    """``run_dir/manifest.json``, or an empty dict when the run has none."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _as_cells(cells) -> pd.DataFrame:
    if isinstance(cells, (str, os.PathLike)):
        return read_cells(cells)
    return cells


# --------------------------------------------------------------------------- the grid

def framework_order(cells, manifest: dict | None = None) -> list[str]:
    """Frameworks present in ``cells``: the manifest's order, else scratch, keras, torch, then the rest."""
    present = list(dict.fromkeys(_as_cells(cells)["framework"].tolist()))
    wanted = list((manifest or {}).get("config", {}).get("frameworks", [])) or list(CANONICAL_ORDER)
    ordered = [f for f in wanted if f in present]
    return ordered + sorted(f for f in present if f not in ordered)


def _unique_sorted(values) -> list[float]:
    out: list[float] = []
    for value in sorted(float(v) for v in values if v is not None and np.isfinite(float(v))):
        if not out or not math.isclose(value, out[-1], rel_tol=_RTOL, abs_tol=0.0):
            out.append(value)
    return out


def grid_axes(cells, manifest: dict | None = None) -> tuple[list[float], list[float]]:
    """(etas, lmbdas), ascending: the manifest's grid joined with the values seen in ``cells``."""
    cells = _as_cells(cells)
    config = (manifest or {}).get("config", {})
    etas = _unique_sorted(list(config.get("etas", [])) + cells["eta"].tolist())
    lmbdas = _unique_sorted(list(config.get("lmbdas", [])) + cells["lmbda"].tolist())
    return etas, lmbdas


def _position(axis: list[float], value: float) -> int:
    for i, candidate in enumerate(axis):
        if math.isclose(candidate, value, rel_tol=_RTOL, abs_tol=0.0):
            return i
    raise KeyError(f"{value!r} is not on the grid axis {axis}")


def _seed_status(statuses) -> str:
    statuses = set(statuses)
    if "diverged" in statuses:
        return "diverged"
    if statuses - {"ok"}:
        return "failed"
    return "ok"


def cell_summary(cells, framework: str, *, etas=None, lmbdas=None) -> pd.DataFrame:
    """One row per (eta, lambda) of ``framework`` that has results, seeds folded together.

    Columns: eta, lmbda (snapped to the grid axes), status ("ok", "diverged" if any seed
    diverged, else "failed" if any seed failed or has another status), n_seeds, epochs
    (the most any seed ran), the mean over seeds of every metric (NaN unless "ok"), and
    error (the first non-empty error message).
    """
    cells = _as_cells(cells)
    if etas is None or lmbdas is None:
        auto_etas, auto_lmbdas = grid_axes(cells)
        etas = auto_etas if etas is None else _unique_sorted(etas)
        lmbdas = auto_lmbdas if lmbdas is None else _unique_sorted(lmbdas)
    rows = cells[cells["framework"] == framework]
    metrics = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds")
    out = []
    if len(rows):
        keys = pd.DataFrame({
            "i": [_position(etas, v) for v in rows["eta"]],
            "j": [_position(lmbdas, v) for v in rows["lmbda"]],
        }, index=rows.index)
        for (i, j), group in rows.groupby([keys["i"], keys["j"]], sort=True):
            status = _seed_status(group["status"])
            record = {"eta": etas[i], "lmbda": lmbdas[j], "status": status,
                      "n_seeds": int(group["seed"].nunique(dropna=False)),
                      "epochs": float(group["epochs"].max())}
            for metric in metrics:
                record[metric] = float(group[metric].mean()) if status == "ok" else math.nan
            errors = [e for e in group["error"].astype(str) if e.strip() and e != "nan"]
            record["error"] = errors[0] if errors else ""
            out.append(record)
    columns = ["eta", "lmbda", "status", "n_seeds", "epochs", *metrics, "error"]
    return pd.DataFrame(out, columns=columns)


def _empty_table(etas, lmbdas, fill, dtype) -> pd.DataFrame:
    table = pd.DataFrame(fill, index=pd.Index(etas, name="eta", dtype=float),
                         columns=pd.Index(lmbdas, name="lmbda", dtype=float), dtype=dtype)
    return table


def grid_table(cells, framework: str, metric: str, *, etas=None, lmbdas=None) -> pd.DataFrame:
    """The numbers behind one heatmap: rows eta ascending, columns lambda ascending.

    Values are the mean of ``metric`` over seeds; NaN where the cell diverged (any
    seed), failed, or has no result. ``cells`` is a DataFrame as read by
    :func:`read_cells` (or a run folder). ``etas``/``lmbdas`` fix the axes (default:
    the values present in ``cells``).
    """
    cells = _as_cells(cells)
    if etas is None or lmbdas is None:
        auto_etas, auto_lmbdas = grid_axes(cells)
        etas = auto_etas if etas is None else _unique_sorted(etas)
        lmbdas = auto_lmbdas if lmbdas is None else _unique_sorted(lmbdas)
    table = _empty_table(etas, lmbdas, math.nan, float)
    summary = cell_summary(cells, framework, etas=etas, lmbdas=lmbdas)
    for row in summary.itertuples(index=False):
        table.loc[row.eta, row.lmbda] = getattr(row, metric)
    return table


def status_table(cells, framework: str, *, etas=None, lmbdas=None) -> pd.DataFrame:
    """Same shape as :func:`grid_table`: "ok", "diverged", "failed" or "missing" per cell."""
    cells = _as_cells(cells)
    if etas is None or lmbdas is None:
        auto_etas, auto_lmbdas = grid_axes(cells)
        etas = auto_etas if etas is None else _unique_sorted(etas)
        lmbdas = auto_lmbdas if lmbdas is None else _unique_sorted(lmbdas)
    table = _empty_table(etas, lmbdas, "missing", object)
    for row in cell_summary(cells, framework, etas=etas, lmbdas=lmbdas).itertuples(index=False):
        table.loc[row.eta, row.lmbda] = row.status
    return table


def difference_table(cells, other: str, metric: str = "test_accuracy", *, base: str = BASE,
                     etas=None, lmbdas=None) -> pd.DataFrame:
    """``grid_table(other) - grid_table(base)``: NaN unless both cells are "ok"."""
    cells = _as_cells(cells)
    if etas is None or lmbdas is None:
        auto_etas, auto_lmbdas = grid_axes(cells)
        etas = auto_etas if etas is None else _unique_sorted(etas)
        lmbdas = auto_lmbdas if lmbdas is None else _unique_sorted(lmbdas)
    return (grid_table(cells, other, metric, etas=etas, lmbdas=lmbdas)
            - grid_table(cells, base, metric, etas=etas, lmbdas=lmbdas))


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


# --------------------------------------------------------------------------- labels

def pow10_label(value: float) -> str:
    """Tick label of a grid value: ``$10^{-5}$``; ``$2.5\\times10^{-3}$``; ``0``."""
    value = float(value)
    if value == 0:
        return "0"
    if not np.isfinite(value):
        return str(value)
    sign = "-" if value < 0 else ""
    exponent = math.floor(math.log10(abs(value)))
    mantissa = abs(value) / 10.0 ** exponent
    if math.isclose(mantissa, 10.0, rel_tol=1e-6):
        mantissa, exponent = 1.0, exponent + 1
    if math.isclose(mantissa, 1.0, rel_tol=1e-6):
        return f"${sign}10^{{{exponent}}}$"
    return f"${sign}{mantissa:.3g}\\times10^{{{exponent}}}$"


def _metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def _seed_note(cells, frameworks) -> str:
    """" (mean over 2 seeds)" when a framework has several seeds in a cell, else ""."""
    per_framework = {}
    for framework in frameworks:
        counts = cell_summary(cells, framework)["n_seeds"].tolist()
        if counts:
            low, high = min(counts), max(counts)
            per_framework[framework] = str(low) if low == high else f"{low}\u2013{high}"
    if all(n == "1" for n in per_framework.values()):
        return ""
    if len(set(per_framework.values())) == 1:
        return f" (mean over {next(iter(per_framework.values()))} seeds)"
    return " (mean over seeds: " + ", ".join(f"{f} {n}" for f, n in per_framework.items()) + ")"


def _two_line_title(title: str, note: str) -> str:
    """The title, and the seed note (without its brackets) on a second line."""
    note = note.strip()
    return f"{title}\n{note[1:-1]}" if note else title


def _limits(*tables, symmetric=False, floor=0.0) -> tuple[float, float]:
    values = np.concatenate([np.asarray(t, dtype=float).ravel() for t in tables]) if tables else np.array([])
    values = values[np.isfinite(values)]
    if symmetric:
        limit = float(np.max(np.abs(values))) if values.size else 0.0
        limit = max(limit, floor)
        if limit == 0:
            limit = 1e-3
        return -limit, limit
    if not values.size:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    if low == high:
        pad = 0.01 if low == 0 else abs(low) * 0.01
        low, high = low - pad, high + pad
    return low, high


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
    cells = _as_cells(cells)
    if etas is None or lmbdas is None:
        etas, lmbdas = grid_axes(cells)
    table = grid_table(cells, framework, metric, etas=etas, lmbdas=lmbdas)
    marks = _status_marks(status_table(cells, framework, etas=etas, lmbdas=lmbdas))
    figure, (ax,), cbar_ax = _heatmap_layout(1, len(etas), len(lmbdas), dpi)
    ax.set_label(f"heatmap:{framework}")
    vmin, vmax = _limits(table)
    _draw_heatmap(ax, table, marks, cmap=cmap, vmin=vmin, vmax=vmax, fmt=fmt, cbar_ax=cbar_ax,
                  cbar_label=_metric_name(metric))
    ax.set_title(_two_line_title(f"{framework}: {_metric_name(metric)}", _seed_note(cells, [framework])))
    _footnote(figure, _kinds(marks))
    return figure


def side_by_side_figure(cells, metric: str = "test_accuracy", frameworks=None, *, etas=None, lmbdas=None,
                        fmt: str = ".3f", cmap: str = "viridis", dpi: float = 100) -> Figure:
    """All frameworks side by side on ONE colour scale (shared vmin/vmax, one colour bar).

    Heatmap axes are labelled ``"heatmap:<framework>"`` and the colour bar ``"colorbar"``
    (``Axes.get_label()``), so callers can find them.
    """
    cells = _as_cells(cells)
    frameworks = list(frameworks) if frameworks is not None else framework_order(cells)
    if etas is None or lmbdas is None:
        etas, lmbdas = grid_axes(cells)
    tables = [grid_table(cells, f, metric, etas=etas, lmbdas=lmbdas) for f in frameworks]
    marks = [_status_marks(status_table(cells, f, etas=etas, lmbdas=lmbdas)) for f in frameworks]
    vmin, vmax = _limits(*tables)
    figure, axes, cbar_ax = _heatmap_layout(len(frameworks), len(etas), len(lmbdas), dpi, suptitle=True)
    for k, (ax, framework, table, mark) in enumerate(zip(axes, frameworks, tables, marks)):
        ax.set_label(f"heatmap:{framework}")
        _draw_heatmap(ax, table, mark, cmap=cmap, vmin=vmin, vmax=vmax, fmt=fmt, cbar=(k == 0),
                      cbar_ax=cbar_ax if k == 0 else None, cbar_label=_metric_name(metric),
                      ylabel=(k == 0))
        ax.set_title(f"{framework}{_seed_note(cells, [framework])}")
    figure.suptitle(f"{_metric_name(metric).capitalize()}: all frameworks on one colour scale")
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
    cells = _as_cells(cells)
    if etas is None or lmbdas is None:
        etas, lmbdas = grid_axes(cells)
    table = difference_table(cells, other, metric, base=base, etas=etas, lmbdas=lmbdas)
    marks = _difference_marks(status_table(cells, other, etas=etas, lmbdas=lmbdas),
                              status_table(cells, base, etas=etas, lmbdas=lmbdas), other, base)
    vmin, vmax = _limits(table, symmetric=True, floor=margin)
    data = table.to_numpy(dtype=float)
    outline = np.isfinite(data) & (np.abs(data) > margin)
    figure, (ax,), cbar_ax = _heatmap_layout(1, len(etas), len(lmbdas), dpi)
    ax.set_label(f"heatmap:{other}-{base}")
    _draw_heatmap(ax, table, marks, cmap=cmap, vmin=vmin, vmax=vmax, center=0.0, fmt=fmt, cbar_ax=cbar_ax,
                  cbar_label=f"{other} \u2212 {base}", outline=outline)
    ax.set_title(_two_line_title(f"{_metric_name(metric).capitalize()}: {other} \u2212 {base}",
                                 _seed_note(cells, [other, base])))
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

    Top row: training loss (the epoch's objective, ``loss``; ``train_loss`` if absent),
    solid, and test loss, dashed. Bottom row: test accuracy, solid, and train accuracy, dashed.
    """
    cells = _as_cells(cells)
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
                              & np.isclose(curve_eta, eta, rtol=_RTOL, atol=0)
                              & np.isclose(curve_lmbda, lmbda, rtol=_RTOL, atol=0)]
            if selected.empty:
                continue
            mean = selected.groupby("epoch").mean(numeric_only=True).sort_index()
            epochs = mean.index.to_numpy(dtype=float)
            train_loss = mean["loss"] if mean["loss"].notna().any() else mean["train_loss"]
            for column, values, style in (("loss", train_loss, "-"), ("test_loss", mean["test_loss"], "--")):
                values = values.to_numpy(dtype=float)
                values = np.where(np.isfinite(values) & (values > 0), values, np.nan)
                top_ax.plot(epochs, values, style, color=colour, linewidth=1.4, marker=".")
            bottom_ax.plot(epochs, mean["test_accuracy"].to_numpy(dtype=float), "-", color=colour,
                           linewidth=1.4, marker=".")
            bottom_ax.plot(epochs, mean["train_accuracy"].to_numpy(dtype=float), "--", color=colour,
                           linewidth=1.0)
        top_ax.set_yscale("log")
        top_ax.set_title(framework)
        top_ax.grid(True, which="both", alpha=0.3)
        bottom_ax.grid(True, alpha=0.3)
        bottom_ax.set_xlabel("epoch")
        bottom_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("loss (log scale)")
    axes[1, 0].set_ylabel("accuracy")
    handles = [Line2D([], [], color=c, linewidth=1.6,
                      label=f"\u03b7={eta:g}, \u03bb={lmbda:g}") for c, (eta, lmbda) in zip(colours, chosen)]
    handles += [Line2D([], [], color="0.3", linestyle="-", label="solid: train loss,\ntest accuracy"),
                Line2D([], [], color="0.3", linestyle="--", label="dashed: test loss,\ntrain accuracy")]
    figure.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    figure.suptitle(f"Loss and accuracy over the epochs, best {len(chosen)} cells"
                    f"{_seed_note(cells, frameworks)}")
    figure.subplots_adjust(left=1.1 / figure.get_figwidth(), right=1 - 2.2 / figure.get_figwidth(),
                           bottom=0.1, top=0.88, wspace=0.08, hspace=0.1)
    return figure


def _snap(value: float, axis: list[float]) -> float:
    for candidate in axis:
        if math.isclose(candidate, value, rel_tol=_RTOL, abs_tol=0.0):
            return candidate
    return float(value)


# --------------------------------------------------------------------------- saving

def _replace_into(path: Path, write) -> Path:
    """Write through ``write(tmp_path)`` then rename onto ``path`` (no half-written file)."""
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _save_figure(figure: Figure, folder: Path, stem: str, dpi: float) -> dict[str, Path]:
    out = {}
    with rc_context({"svg.hashsalt": "xfw", "svg.fonttype": "path"}):
        for fmt in ("png", "svg"):
            path = folder / f"{stem}.{fmt}"
            metadata = {"Date": None} if fmt == "svg" else None
            _replace_into(path, lambda tmp: figure.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata))
            out[f"{stem}.{fmt}"] = path
    figure.clear()  # figures are never registered with pyplot: clearing frees everything
    return out


def _save_table(table: pd.DataFrame, folder: Path, stem: str, **kwargs) -> dict[str, Path]:
    path = folder / f"{stem}.csv"
    _replace_into(path, lambda tmp: table.to_csv(tmp, **kwargs))
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
    cells = read_cells(run_dir)
    manifest = read_manifest(run_dir)
    curves = read_curves(run_dir)
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
    _replace_into(folder / INDEX, lambda tmp: tmp.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8"))
    return out


INDEX = "index.json"  # in figures/: what draw_run drew, from which inputs, with which margin


def _input_stamp(run_dir: Path) -> dict:
    stamp = {}
    for name in ("cells.csv", "curves.csv", "manifest.json"):
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
