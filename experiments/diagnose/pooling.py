"""Window hypotheses of Conv2D and the pools: stride ignored in backward, overlaps overwritten.

Both concern the scatter of the input gradient into the windows of the (padded) input:

* stride ignored: the contribution of output position ``o`` lands at input offset
  ``o + d`` instead of ``o * stride + d`` (the output index used as the input offset);
  for a Conv2D kernel gradient, the windows are read at ``o`` instead of ``o * stride``;
* overlaps overwritten: windows that overlap (window larger than its stride) assign
  (``=``) their contribution instead of adding it, so each input cell keeps the last
  window in row-major order that covers it. For max pooling there are two ways to write
  this: the whole window assigned (``dx[window] = mask * g``) or only the maximum's cell.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from scratch import spec as S

from . import ids
from .core import Candidate

IG, KG = "input gradient", "kernel gradient"
WINDOWED = (S.Conv2D, S.MaxPool2D, S.AvgPool2D)


def _window(layer):
    if isinstance(layer, S.Conv2D):
        return layer.kernel_size, layer.strides
    return layer.pool_size, layer.strides


def _last_window(length, k, s, count):
    """For each padded input position: the last window covering it (row-major) and the offset in it."""
    p = np.arange(length)
    o = np.minimum(p // s, count - 1)
    d = p - o * s
    return o, d, d < k


def _padded(ctx, value):
    op = ctx.base.linear
    if op.pad_h == (0, 0) and op.pad_w == (0, 0):
        return ctx.x
    return np.pad(ctx.x, ((0, 0), (0, 0), op.pad_h, op.pad_w), constant_values=value)


def _crop(ctx, dxp):
    op = ctx.base.linear
    h, w = ctx.input_shape[1:]
    return dxp[:, :, op.pad_h[0]:op.pad_h[0] + h, op.pad_w[0]:op.pad_w[0] + w]


def _overwrite(ctx, contrib):
    """Scatter ``contrib`` (N, C, Ho, Wo, kh, kw) keeping each cell's last covering window."""
    (kh, kw), (sh, sw) = _window(ctx.layer)
    ho, wo = contrib.shape[2:4]
    op = ctx.base.linear
    hp = ctx.input_shape[1] + sum(op.pad_h)
    wp = ctx.input_shape[2] + sum(op.pad_w)
    oi, di, vi = _last_window(hp, kh, sh, ho)
    oj, dj, vj = _last_window(wp, kw, sw, wo)
    picked = contrib[:, :, oi[:, None], oj[None, :], np.minimum(di, kh - 1)[:, None], np.minimum(dj, kw - 1)[None, :]]
    return _crop(ctx, np.where(vi[:, None] & vj[None, :], picked, 0.0))


def _max_arg(ctx):
    """(N, C, Ho, Wo) index of the first maximum of each window, row-major, as the scratch engine."""
    (ph, pw), (sh, sw) = _window(ctx.layer)
    ho, wo = ctx.base.output.shape[2:]
    win = sliding_window_view(_padded(ctx, -np.inf), (ph, pw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :ho, :wo]
    return win.reshape(win.shape[:4] + (-1,)).argmax(axis=-1)


def _max_only_overwrite(ctx, g, arg):
    """Only the maximum's cell is assigned; a cell that is the maximum of several windows keeps the last."""
    (ph, pw), (sh, sw) = _window(ctx.layer)
    n, c, ho, wo = g.shape
    op = ctx.base.linear
    hp, wp = ctx.input_shape[1] + sum(op.pad_h), ctx.input_shape[2] + sum(op.pad_w)
    rows = np.arange(ho)[:, None] * sh + arg // pw
    cols = np.arange(wo)[None, :] * sw + arg % pw
    cell = (rows * wp + cols).reshape(n * c, -1) + (np.arange(n * c) * hp * wp)[:, None]
    window = np.broadcast_to(np.arange(ho * wo), (n * c, ho * wo))
    winner = np.full(n * c * hp * wp, -1)
    np.maximum.at(winner, cell.ravel(), (window + (np.arange(n * c) * ho * wo)[:, None]).ravel())
    flat = g.ravel()
    dxp = np.where(winner >= 0, flat[np.maximum(winner, 0)], 0.0).reshape(n, c, hp, wp)
    return _crop(ctx, dxp)


def candidates(ctx):
    layer = ctx.layer
    if not isinstance(layer, WINDOWED) or ctx.quantity not in (IG, KG):
        return
    (kh, kw), (sh, sw) = _window(layer)
    dz = ctx.dz
    if (sh, sw) != (1, 1):
        fix = ("your backward puts the gradient of output position o at input offset o instead of o * stride "
               f"(stride {(sh, sw)}) - multiply the output index by the stride")
        if ctx.quantity == IG:
            yield Candidate(ids.STRIDE_IGNORED, "the stride ignored in backward", fix,
                            ctx.base.backward_linear(dz, strides=(1, 1))[IG])
        elif isinstance(layer, S.Conv2D):
            ho, wo = dz.shape[2:]
            win = sliding_window_view(_padded(ctx, 0.0), (kh, kw), axis=(2, 3))[:, :, :ho, :wo]
            yield Candidate(ids.STRIDE_IGNORED, "the stride ignored in backward", fix,
                            np.einsum("nfij,ncijab->fcab", dz, win, optimize=True))
    if ctx.quantity != IG or (kh <= sh and kw <= sw):
        return
    fix = ("windows overlap (window larger than the stride) and your backward assigns (=) each window's "
           "gradient instead of adding (+=) - accumulate into the input gradient")
    what = "overlapping windows overwriting each other instead of adding"
    if isinstance(layer, S.Conv2D):
        contrib = np.einsum("nfij,fcab->ncijab", dz, ctx.kernel, optimize=True)
        yield Candidate(ids.OVERLAP_OVERWRITES, what, fix, _overwrite(ctx, contrib))
        # A loop over filters inside the window loop that assigns: the last filter's part survives.
        last = np.einsum("nij,cab->ncijab", dz[:, -1], ctx.kernel[-1], optimize=True)
        yield Candidate(ids.OVERLAP_OVERWRITES, what + " (and each filter overwriting the previous one)", fix,
                        _overwrite(ctx, last))
    elif isinstance(layer, S.AvgPool2D):
        ho, wo = ctx.base.output.shape[2:]
        ones = np.ones((1, 1) + ctx.input_shape[1:])
        op = ctx.base.linear
        if op.pad_h != (0, 0) or op.pad_w != (0, 0):
            ones = np.pad(ones, ((0, 0), (0, 0), op.pad_h, op.pad_w))
        cnt = sliding_window_view(ones, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :ho, :wo].sum(axis=(-2, -1))
        g = dz / cnt
        yield Candidate(ids.OVERLAP_OVERWRITES, what, fix, _overwrite(ctx, np.broadcast_to(
            g[..., None, None], g.shape + (kh, kw))))
    else:
        arg = _max_arg(ctx)
        mask = arg[..., None] == np.arange(kh * kw)
        contrib = np.where(mask, dz[..., None], 0.0).reshape(dz.shape + (kh, kw))
        yield Candidate(ids.OVERLAP_OVERWRITES, what + " (the whole window assigned)", fix, _overwrite(ctx, contrib))
        yield Candidate(ids.OVERLAP_OVERWRITES, what + " (the maximum's cell assigned)", fix,
                        _max_only_overwrite(ctx, dz, arg))


CANDIDATES = (candidates,)
