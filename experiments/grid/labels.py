"""Titles, tick labels and colour limits of the grid figures."""
from __future__ import annotations

import math

import numpy as np

from .tables import METRIC_NAMES, cell_summary

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


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def seed_note(cells, frameworks) -> str:
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


def two_line_title(title: str, note: str) -> str:
    """The title, and the seed note (without its brackets) on a second line."""
    note = note.strip()
    return f"{title}\n{note[1:-1]}" if note else title


def colour_limits(*tables, symmetric=False, floor=0.0) -> tuple[float, float]:
    """(vmin, vmax) over the finite values of ``tables``; symmetric around 0 for difference maps."""
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
