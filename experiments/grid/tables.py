"""The numbers behind the heatmaps: pandas tables of a run's cells.

Every function takes the cells as :func:`experiments.grid.store.read_cells` returns them
(or a run folder, read through the store). Tables have rows eta ascending and columns
lambda ascending; with several seeds a cell holds the mean over its seeds, and counts as
diverged if any seed diverged, else as failed if any seed failed.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from .store import read_cells

BASE = "scratch"
CANONICAL_ORDER = ("scratch", "keras", "torch")
METRICS = ("train_accuracy", "test_accuracy")
METRIC_NAMES = {
    "train_accuracy": "train accuracy", "test_accuracy": "test accuracy",
    "train_loss": "train loss", "test_loss": "test loss", "seconds": "seconds",
}
SAME_VALUE_RTOL = 1e-9  # two grid values closer than this (relative) are the same value

def as_cells(cells) -> pd.DataFrame:
    """``cells`` itself, or the cells of the run folder ``cells`` names."""
    if isinstance(cells, (str, os.PathLike)):
        return read_cells(cells)
    return cells


# --------------------------------------------------------------------------- the grid

def framework_order(cells, manifest: dict | None = None) -> list[str]:
    """Frameworks present in ``cells``: the manifest's order, else scratch, keras, torch, then the rest."""
    present = list(dict.fromkeys(as_cells(cells)["framework"].tolist()))
    wanted = list((manifest or {}).get("config", {}).get("frameworks", [])) or list(CANONICAL_ORDER)
    ordered = [f for f in wanted if f in present]
    return ordered + sorted(f for f in present if f not in ordered)


def unique_sorted(values) -> list[float]:
    out: list[float] = []
    for value in sorted(float(v) for v in values if v is not None and np.isfinite(float(v))):
        if not out or not math.isclose(value, out[-1], rel_tol=SAME_VALUE_RTOL, abs_tol=0.0):
            out.append(value)
    return out


def grid_axes(cells, manifest: dict | None = None) -> tuple[list[float], list[float]]:
    """(etas, lmbdas), ascending: the manifest's grid joined with the values seen in ``cells``."""
    cells = as_cells(cells)
    config = (manifest or {}).get("config", {})
    etas = unique_sorted(list(config.get("etas", [])) + cells["eta"].tolist())
    lmbdas = unique_sorted(list(config.get("lmbdas", [])) + cells["lmbda"].tolist())
    return etas, lmbdas


def _position(axis: list[float], value: float) -> int:
    for i, candidate in enumerate(axis):
        if math.isclose(candidate, value, rel_tol=SAME_VALUE_RTOL, abs_tol=0.0):
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
    cells = as_cells(cells)
    if etas is None or lmbdas is None:
        auto_etas, auto_lmbdas = grid_axes(cells)
        etas = auto_etas if etas is None else unique_sorted(etas)
        lmbdas = auto_lmbdas if lmbdas is None else unique_sorted(lmbdas)
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
    cells = as_cells(cells)
    if etas is None or lmbdas is None:
        auto_etas, auto_lmbdas = grid_axes(cells)
        etas = auto_etas if etas is None else unique_sorted(etas)
        lmbdas = auto_lmbdas if lmbdas is None else unique_sorted(lmbdas)
    table = _empty_table(etas, lmbdas, math.nan, float)
    summary = cell_summary(cells, framework, etas=etas, lmbdas=lmbdas)
    for row in summary.itertuples(index=False):
        table.loc[row.eta, row.lmbda] = getattr(row, metric)
    return table


def status_table(cells, framework: str, *, etas=None, lmbdas=None) -> pd.DataFrame:
    """Same shape as :func:`grid_table`: "ok", "diverged", "failed" or "missing" per cell."""
    cells = as_cells(cells)
    if etas is None or lmbdas is None:
        auto_etas, auto_lmbdas = grid_axes(cells)
        etas = auto_etas if etas is None else unique_sorted(etas)
        lmbdas = auto_lmbdas if lmbdas is None else unique_sorted(lmbdas)
    table = _empty_table(etas, lmbdas, "missing", object)
    for row in cell_summary(cells, framework, etas=etas, lmbdas=lmbdas).itertuples(index=False):
        table.loc[row.eta, row.lmbda] = row.status
    return table


def difference_table(cells, other: str, metric: str = "test_accuracy", *, base: str = BASE,
                     etas=None, lmbdas=None) -> pd.DataFrame:
    """``grid_table(other) - grid_table(base)``: NaN unless both cells are "ok"."""
    cells = as_cells(cells)
    if etas is None or lmbdas is None:
        auto_etas, auto_lmbdas = grid_axes(cells)
        etas = auto_etas if etas is None else unique_sorted(etas)
        lmbdas = auto_lmbdas if lmbdas is None else unique_sorted(lmbdas)
    return (grid_table(cells, other, metric, etas=etas, lmbdas=lmbdas)
            - grid_table(cells, base, metric, etas=etas, lmbdas=lmbdas))
