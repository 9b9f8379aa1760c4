"""Convention inference: under which layout does the user's raw array equal the reference?

Candidates are einops-style axis strings: every order of the canonical axes of ``kind``,
with axes of size 1 optionally left out and consecutive axes optionally grouped
(flattened) in parentheses, e.g. ``"n h w c"``, ``"(kh kw) out"``, ``"n (h w c)"``.
Each is tried with :func:`einops.rearrange` to the canonical order and compared with
the float64 bound; the ones that match are returned, fewest groups first.
"""
from __future__ import annotations

import itertools

import einops
import numpy as np

from experiments.parity import tolerances

from .core import residual

KINDS = {"activation-image": "n c h w", "activation-flat": "n f", "conv-kernel": "out in kh kw",
         "dense-kernel": "in out"}


def _groupings(axes):
    """Every way to split ``axes`` (in order) into consecutive groups."""
    n = len(axes)
    for cuts in itertools.product((False, True), repeat=max(n - 1, 0)):
        groups, cur = [], [axes[0]]
        for cut, ax in zip(cuts, axes[1:]):
            if cut:
                groups.append(cur)
                cur = [ax]
            else:
                cur.append(ax)
        groups.append(cur)
        yield groups


def _string(groups):
    return " ".join(g[0] if len(g) == 1 else "(" + " ".join(g) + ")" for g in groups)


def candidate_layouts(canonical: str, sizes: dict, ndim: int):
    """Layout strings of ``ndim`` written axes over the canonical axes (size-1 axes may be left out)."""
    axes = canonical.split()
    ones = [a for a in axes if sizes[a] == 1]
    seen = []
    for r in range(len(ones) + 1):
        for dropped in itertools.combinations(ones, r):
            kept = [a for a in axes if a not in dropped]
            for perm in itertools.permutations(kept):
                for groups in _groupings(list(perm)):
                    if len(groups) == ndim:
                        s = _string(groups)
                        if s not in seen:
                            seen.append(s)
    return sorted(seen, key=lambda s: (_written(s), s.count("("), s != canonical))


def _written(layout: str) -> int:
    return len(layout.replace("(", " ").replace(")", " ").split())


def _safe(pattern: str) -> str:
    """einops warns on the axis name ``in`` (a Python keyword): rename it for the call only."""
    return " ".join("cin" if t == "in" else t for t in pattern.replace("(", "( ").replace(")", " )").split()) \
        .replace("( ", "(").replace(" )", ")")


def infer_layout(raw, expected, *, kind) -> list:
    """Layouts under which ``raw`` rearranged to canonical equals ``expected`` (float64 bound)."""
    if kind not in KINDS:
        raise ValueError(f"kind: unknown {kind!r}; allowed: {', '.join(KINDS)}")
    raw = np.asarray(raw, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    canonical = KINDS[kind]
    axes = canonical.split()
    if expected.ndim != len(axes) or raw.size != expected.size:
        return []
    sizes = dict(zip(axes, expected.shape))
    bound = tolerances.rtol_for("float64")
    found = []
    for layout in candidate_layouts(canonical, sizes, raw.ndim):
        dropped = [a for a in axes if a not in layout.replace("(", " ").replace(")", " ").split()]
        target = " ".join("1" if a in dropped else a for a in axes)  # a left-out axis has size 1
        try:
            arr = einops.rearrange(raw, _safe(f"{layout} -> {target}"),
                                   **{("cin" if a == "in" else a): sizes[a] for a in axes if a not in dropped})
        except einops.EinopsError:
            continue
        if arr.shape == expected.shape and residual(expected, arr) <= bound:
            found.append(layout)
    # Size-1 axes can sit anywhere: keep only the matches that write the fewest of them.
    fewest = min((_written(s) for s in found), default=0)
    return [s for s in found if _written(s) == fewest]
