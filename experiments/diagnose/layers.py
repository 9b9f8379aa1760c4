"""Hypotheses on the weights and the wiring of Conv2D and Dense layers.

Kernel misreadings (flipped 180 degrees, kh <-> kw transposed, in <-> out swapped) come in
three variants: the whole layer built on the misread kernel (its kernel gradient mapped
back onto the stored kernel), only the kernel gradient misread, only the input-gradient
pass using the misread kernel. Then one input channel or one filter only, samples paired
with another sample's upstream gradient, and a bias gradient taken from one sample.
"""
from __future__ import annotations

import numpy as np

from scratch import spec as S

from . import ids
from .core import Candidate

KG, IG, BG, OUT = "kernel gradient", "input gradient", "bias gradient", "output"


def _misreadings(layer, w):
    """(id, what, fix, forward map, gradient map back) for each way to misread kernel ``w``."""
    out = []
    if isinstance(layer, S.Conv2D):
        o, c, kh, kw = w.shape
        out.append((ids.KERNEL_FLIPPED, "the kernel rotated by 180 degrees",
                    "you compute a convolution; a Conv2D layer computes a cross-correlation - use the kernel "
                    "as it is (in backward, the input gradient is the full correlation with the rotated kernel)",
                    lambda k: k[:, :, ::-1, ::-1], lambda g: g[:, :, ::-1, ::-1]))
        out.append((ids.KERNEL_TRANSPOSED, "the kernel's rows and columns swapped (kh <-> kw)",
                    "you index the kernel as W[out, in, col, row] - index it W[out, in, row, col]",
                    lambda k: k.transpose(0, 1, 3, 2).reshape(k.shape),
                    lambda g: g.reshape(o, c, kw, kh).transpose(0, 1, 3, 2)))
        if o == c:
            out.append((ids.IN_OUT_SWAPPED, "the kernel's input and output channels swapped",
                        "you index the kernel as W[in, out, kh, kw] - the canonical layout is W[out, in, kh, kw]",
                        lambda k: k.transpose(1, 0, 2, 3), lambda g: g.transpose(1, 0, 2, 3)))
    elif isinstance(layer, S.Dense) and w.shape[0] == w.shape[1]:
        out.append((ids.IN_OUT_SWAPPED, "the kernel transposed (inputs and outputs swapped)",
                    "you compute x W^T with W[in, out] (or x W with W[out, in]) - a Dense layer computes "
                    "y = x W + b with W[in, out]", lambda k: k.T, lambda g: g.T))
    return out


def kernel_candidates(ctx):
    w = ctx.kernel
    if w is None or not isinstance(ctx.layer, (S.Conv2D, S.Dense)):
        return
    for hid, what, fix, fwd, back in _misreadings(ctx.layer, w):
        w2 = fwd(w)
        if np.array_equal(w2, w):
            continue
        if ctx.wants(OUT, IG, KG, BG):
            res = ctx.full(ctx.run(kernel=w2))
            if ctx.quantity == KG:
                yield Candidate(hid, what + " throughout the layer", fix, back(res[KG]))
                yield Candidate(hid, what + " throughout the layer (its gradient reported as computed)", fix,
                                res[KG])
            else:
                yield Candidate(hid, what + " throughout the layer", fix, res[ctx.quantity])
        if ctx.quantity == KG:
            yield Candidate(hid, what + " in the kernel gradient", fix, back(ctx.reference[KG]))
        if ctx.quantity == IG:
            res = ctx.base.backward_linear(ctx.dz, kernel=w2)
            yield Candidate(hid, what + " in the input-gradient pass", fix, res[IG])


def channel_candidates(ctx):
    """One input channel only (Conv2D, C > 1) and one filter only (Conv2D, filters > 1)."""
    w = ctx.kernel
    if w is None or not isinstance(ctx.layer, S.Conv2D):
        return
    o, c = w.shape[:2]
    bias = np.asarray(ctx.params.get("bias", np.zeros(o)), dtype=np.float64)
    fix_c = ("only input channel {i} reaches the output: a loop over channels assigns (=) where it must add "
             "(+=) - sum the contributions of every input channel")
    for i in range(c) if c > 1 else ():
        mask = np.zeros_like(w)
        mask[:, i] = w[:, i]
        what = f"only input channel {i} of {c}"
        if ctx.wants(OUT, IG):
            yield Candidate(ids.ONE_CHANNEL, what, fix_c.format(i=i), ctx.full(ctx.run(kernel=mask))[ctx.quantity])
        if ctx.quantity == KG:
            g = np.zeros_like(w)
            g[:, i] = ctx.reference[KG][:, i]
            yield Candidate(ids.ONE_CHANNEL, what, fix_c.format(i=i), g)
    fix_f = ("only filter {i} is computed: a loop over filters keeps one result - compute and store every "
             "filter's output channel")
    for i in range(o) if o > 1 else ():
        mask, bmask = np.zeros_like(w), np.zeros_like(bias)
        mask[i], bmask[i] = w[i], bias[i]
        what = f"only filter {i} of {o}"
        if ctx.wants(OUT, IG):
            run = ctx.run(kernel=mask, bias=bmask)
            yield Candidate(ids.ONE_FILTER, what, fix_f.format(i=i), ctx.full(run)[ctx.quantity])
            if ctx.quantity == OUT:  # every output channel overwritten by filter i's
                one = run.output[:, i:i + 1]
                yield Candidate(ids.ONE_FILTER, what + " copied to every output channel", fix_f.format(i=i),
                                np.broadcast_to(one, run.output.shape))
        if ctx.wants(KG, BG):
            g = np.zeros_like(ctx.reference[ctx.quantity])
            g[i] = ctx.reference[ctx.quantity][i]
            yield Candidate(ids.ONE_FILTER, what, fix_f.format(i=i), g)


def batch_candidates(ctx):
    """Samples paired with another sample's upstream gradient; a bias gradient from one sample."""
    n = ctx.n
    if n > 1 and ctx.wants(IG, KG):
        fix = ("sample n is paired with the upstream gradient of another sample - index the upstream gradient "
               "with the same sample index as the input")
        for what, perm in (("the upstream gradient shifted by one sample", np.roll(np.arange(n), 1)),
                           ("the upstream gradient shifted back by one sample", np.roll(np.arange(n), -1)),
                           ("the upstream gradient in reversed sample order", np.arange(n)[::-1]),
                           ("the first sample's upstream gradient for every sample", np.zeros(n, dtype=int)),
                           ("the last sample's upstream gradient for every sample", np.full(n, n - 1))):
            yield Candidate(ids.BATCH_MISPAIRED, what, fix, ctx.full(ctx.base, ctx.dy[perm])[ctx.quantity])
    if n > 1 and ctx.quantity == BG and isinstance(ctx.layer, (S.Conv2D, S.Dense)):
        axes = tuple(range(2, ctx.dz.ndim))  # positions of a Conv2D
        per_sample = ctx.dz.sum(axis=axes) if axes else ctx.dz  # (N, out)
        fix = ("the bias gradient is not summed over the batch (a per-sample loop assigns it instead of adding) - "
               "sum the upstream gradient over the batch (and over positions for a Conv2D)")
        for i, name in ((n - 1, "the last"), (0, "the first")):
            yield Candidate(ids.BIAS_NOT_SUMMED, f"{name} sample's bias gradient only", fix, per_sample[i])


CANDIDATES = (kernel_candidates, channel_candidates, batch_candidates)
