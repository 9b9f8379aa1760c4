"""Flatten-order hypotheses: features flattened in H, W, C (or another) order instead of C, H, W."""
from __future__ import annotations

import itertools

import numpy as np

from scratch import spec as S

from . import ids
from .core import Candidate

AXES = "chw"


def candidates(ctx):
    if not isinstance(ctx.layer, S.Flatten) or len(ctx.input_shape) != 3:
        return
    n = ctx.n
    for perm in itertools.permutations(range(3)):
        if perm == (0, 1, 2):
            continue
        order = ", ".join(AXES[p].upper() for p in perm)
        what = f"the features flattened in {order} order"
        fix = f"you flatten in {order} order - flatten (C, H, W) in C, H, W order (reshape an NCHW array)"
        full = (0,) + tuple(p + 1 for p in perm)
        if ctx.quantity == "output":
            yield Candidate(ids.FLATTEN_ORDER, what, fix, ctx.x.transpose(full).reshape(n, -1))
        elif ctx.quantity == "input gradient":
            shape = (n,) + tuple(ctx.input_shape[p] for p in perm)
            yield Candidate(ids.FLATTEN_ORDER, what, fix, ctx.dy.reshape(shape).transpose(np.argsort(full)))


CANDIDATES = (candidates,)
