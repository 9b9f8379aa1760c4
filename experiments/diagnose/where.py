"""Where the error lies when no hypothesis fits: one plain sentence.

An entry is off when its floored relative error (as in compare) exceeds ``rtol``. The
checks, in order: nothing off; one sample; one channel; one class (an ``(N, K)`` array);
border rows or columns only; every k-th row or column only; otherwise spread.
"""
from __future__ import annotations

import numpy as np

from experiments.parity import tolerances


def _off(got, expected, rtol):
    e, g = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    scale = np.max(np.abs(e[np.isfinite(e)]), initial=0.0)
    floor = max(tolerances.FLOOR * scale, np.finfo(np.float64).tiny)
    with np.errstate(invalid="ignore"):
        rel = np.abs(g - e) / (np.abs(e) + floor)
    return ~(rel <= rtol)  # NaN counts as off


def _only(off, axis):
    """The single index along ``axis`` that holds every off entry, or None."""
    hit = np.flatnonzero(off.any(axis=tuple(a for a in range(off.ndim) if a != axis)))
    return int(hit[0]) if hit.size == 1 and off.shape[axis] > 1 else None


def _periodic(hit, length):
    """(k, j) when the off lines are exactly every k-th line starting at j (k >= 2), else None."""
    for k in range(2, length):
        for j in range(k):
            if np.array_equal(hit, np.arange(j, length, k)):
                return k, j
    return None


def where_error_lies(got, expected, rtol, *, layout="n c h w") -> str:
    """One sentence on where ``got`` departs from ``expected`` (same shape, canonical ``layout``)."""
    off = _off(got, expected, rtol)
    names = layout.split()
    if off.ndim == 2 and names[0] == "n":
        names = ["n", "k"]  # (N, K): a column is a class
    elif len(names) != off.ndim:
        names = [f"axis {i}" for i in range(off.ndim)]
    total, count = off.size, int(off.sum())
    if count == 0:
        return "no entry is off"
    head = f"{count} of {total} entries are off"
    label = {"n": "sample", "c": "channel", "f": "feature", "k": "class", "out": "filter", "in": "input channel"}
    for axis, name in enumerate(names):
        if name in ("h", "w", "kh", "kw"):
            continue
        i = _only(off, axis)
        if i is not None:
            return f"{head}, all in {label.get(name, name)} {i} (the others are right)"
    for axis, name in enumerate(names):
        if name not in ("h", "w", "kh", "kw"):
            continue
        kind = "rows" if name in ("h", "kh") else "columns"
        size = off.shape[axis]
        hit = np.flatnonzero(off.any(axis=tuple(a for a in range(off.ndim) if a != axis)))
        if size > 2 and hit.size and set(hit) <= {0, size - 1}:
            which = {0: "the first", size - 1: "the last"}
            where = " and ".join(which[int(h)] for h in hit)
            return f"{head}, only in {where} of the {size} {kind} (the border: look at padding and edges)"
        period = _periodic(hit, size) if size > 3 else None
        if period is not None:
            k, j = period
            return f"{head}, only in every {k}-th of the {kind} starting at {j} (look at the stride)"
    return f"{head}, spread over the whole array"
