"""The fast path of a population's first layers (:mod:`scratch.population_layers`): the
shared first Conv2D, its relu (or no activation) and a MaxPool2D whose windows tile the
conv output, run as one stage, block by block of samples, so that the conv output -- the
largest array of the network, P*O channels per pixel -- is written and read in the cache.

Shapes (P members, O filters, N samples, conv output Ho x Wo, windows ph x pw, K = ph*pw
window offsets, pooled output Hq x Wq):

* input: the data (N, C, H, W), shared by every member;
* conv output of a block of ``nb`` samples: the GEMM's (nb*Ho*Wo, P*O), rows in (n, i, j)
  order, columns member-major (p*O + o), i.e. NHWC (nb, Ho, Wo, P*O); it is never
  transposed: window offset ``k = di*pw + dj`` is the strided view ``z[:, di::ph, dj::pw]``
  of it (cropped to Hq x Wq windows), whose rows of P*O channels stay contiguous;
* output: channels (N, P*O, Hq, Wq), C-contiguous, as the scratch MaxPool2DOp gives it;
* route (kept for the backward pass): (N, Hq, Wq, P*O) unsigned ints, the window offset
  that takes each output's gradient, or K for none;
* conv output gradient: (N*Ho*Wo, P*O) in the conv output's row order, the matrix whose
  product with the im2col columns is the kernel gradient, exactly as the unfused stages
  form it.

Every number equals the unfused stages' (the shared Conv2D, the scratch relu and
MaxPool2D ops): see the notes on :class:`SharedConvMaxPool`.
"""
from __future__ import annotations

import math

import numpy as np

from .layers import ActivationOp, Conv2DOp, MaxPool2DOp

__all__ = ["SharedConvMaxPool", "fuse"]

#: Bytes of conv output per block (measured best: smaller blocks pay more NumPy calls per
#: sample, larger ones miss the L2 cache more).
BLOCK_BYTES = 5 << 17
#: Rows per block are a multiple of this. BLAS kernels compute the rows of a product in groups
#: (24 at a time in single-threaded OpenBLAS's float32 kernel here, 4 or 8 in float64; 16 on
#: others); a block that starts at a multiple of every such group computes each element with
#: the same instructions as one product over all rows, and the last block ends in the same
#: remainder rows as the whole. So the blocked conv output is bit for bit the unfused one.
ROW_MULTIPLE = 48


def fuse(ops, i, keys):
    """``(stage, number of ops it replaces)`` when ``ops[i:]`` start with a Conv2D, at most one
    relu or identity activation and a MaxPool2D whose windows tile its input (stride equal
    to the window, no padding); otherwise None. ``ops[i]`` is the population's first
    parametric layer (its input is the shared data)."""
    conv = ops[i]
    if not isinstance(conv, Conv2DOp):
        return None
    j, relu = i + 1, False
    if j < len(ops) and isinstance(ops[j], ActivationOp) and ops[j].act.name in ("relu", "identity"):
        relu = ops[j].act.name == "relu"
        j += 1
    if j >= len(ops) or not isinstance(ops[j], MaxPool2DOp):
        return None
    pool = ops[j]
    if pool.strides != pool.pool_size or pool.pad_h != (0, 0) or pool.pad_w != (0, 0):
        return None  # overlapping, gapped or padded windows: the general stages
    return SharedConvMaxPool(conv, relu, pool, keys), j + 1 - i


class SharedConvMaxPool:
    """data (N, C, H, W) -> channels (N, P*O, Hq, Wq): conv, relu (when ``relu``), max pool.

    Why the numbers are the unfused stages' numbers:

    * The conv output is the same GEMM of the same im2col columns, cut into blocks of
      samples (see ``ROW_MULTIPLE``), plus the bias, in the same order.
    * Max pooling picks values, so ``max_k relu(z_k) == relu(max_k z_k)`` (relu is monotone;
      NaN propagates through both maxima): relu runs on the pooled output, K times smaller.
    * Routing: the scratch op sends the gradient to the first k (row-major in the window)
      whose ``y_k = relu(z_k)`` equals ``max y``, then relu's backward multiplies it by
      ``[z_k > 0]``. If ``max z > 0``, the cells where ``y`` equals ``max y = max z > 0``
      are exactly those where ``z`` equals ``max z`` (every other cell has ``y < max y``),
      so the first of them is the first k with ``z_k == max z``, and ``z_k > 0`` there: the
      gradient goes through unchanged. If ``max z <= 0``, every ``y_k`` is 0, the scratch
      op routes to k = 0 and ``z_0 <= 0`` zeroes it: no cell gets a gradient. This stage
      routes to the first k with ``z_k == max z`` when ``max z > 0`` (or always, without
      relu) and nowhere otherwise -- the same cells, the same values. (A window holding
      NaN has a NaN output, so that member's objective is NaN and it is frozen: its
      gradient is never used.)
    * The first k with ``z_k == max z`` is the first maximum the scratch op's strict ">"
      scan keeps, ties included.
    * Outside training no gradient is routed, so the bias is added after pooling: rounding
      is monotone, so ``max_k (z_k + b) == (max_k z_k) + b`` exactly. In training the
      routing needs ``z + b`` itself, whose rounding can tie cells that ``z`` does not.
    * The gradient matrix (N*Ho*Wo, P*O) holds the routed values and zeros, as the unfused
      stages' ``np.where`` give them, in the same layout; the kernel and bias gradients are
      the same product and the same sum over it.
    """

    def __init__(self, conv: Conv2DOp, relu: bool, pool: MaxPool2DOp, keys):
        self.conv, self.relu, self.keys = conv, relu, keys
        (ph, pw), (hq, wq) = pool.pool_size, pool.out_hw
        ho, wo = conv.out_hw
        # Window offset k = di*pw + dj, as the scratch op numbers it: rows di, di+ph, ... of the
        # conv output, columns dj, dj+pw, ..., Hq x Wq of each (rows and columns past the last
        # whole window are dropped, as "valid" pooling drops them).
        rows = [slice(di, di + ph * (hq - 1) + 1, ph) for di in range(ph)]
        cols = [slice(dj, dj + pw * (wq - 1) + 1, pw) for dj in range(pw)]
        self.rows, self.cols = rows, cols
        self.offsets = [(si, sj) for si in rows for sj in cols]
        self.hw, self.pooled_hw = ho * wo, (hq, wq)
        self.covers = (hq * ph, wq * pw) == (ho, wo)  # every conv output cell is in a window
        self.route_dtype = np.min_scalar_type(len(self.offsets))
        self._buffers = {}  # name -> array, see _buffer

    # ------------------------------------------------------------------ helpers
    def _buffer(self, name, shape, dtype):
        """A scratch array of ``shape`` reused from call to call (allocating big arrays anew
        costs page faults): the first ``shape[0]`` rows of the largest one asked for. It
        never leaves this stage."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < shape[0] or buf.shape[1:] != shape[1:] or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(shape, dtype)
        return buf[:shape[0]]

    def _block(self, channels, itemsize):
        """Samples per block: about BLOCK_BYTES of conv output, rows a multiple of ROW_MULTIPLE."""
        step = ROW_MULTIPLE // math.gcd(self.hw, ROW_MULTIPLE)  # fewest samples whose rows are a multiple
        return step * max(1, BLOCK_BYTES // (self.hw * channels * itemsize * step))

    def _windows(self, z, m, channels):
        """The K window-offset views (m, Hq, Wq, P*O) of a block's conv output rows z."""
        z4 = z.reshape((m,) + self.conv.out_hw + (channels,))
        return [z4[:, si, sj] for si, sj in self.offsets]

    # ------------------------------------------------------------------ passes
    def forward(self, x, training, params):
        kernel, bias = params[self.keys[0]], params[self.keys[1]]
        po = kernel.shape[0] * kernel.shape[1]
        n, dtype, hw = x.shape[0], kernel.dtype, self.hw
        cols, _ = self.conv.columns(x)                       # (N*Ho*Wo, C*kh*kw)
        weights = kernel.reshape(po, -1).T                   # (C*kh*kw, P*O), as the unfused stage
        b = bias.reshape(-1)
        # The output lives until this step's backward pass (the Dense after the Flatten keeps
        # it); the next forward pass of the same kind may reuse it (no page faults).
        out = self._buffer("out" if training else "out_eval", (n, po) + self.pooled_hw, dtype)
        nb = self._block(po, dtype.itemsize)
        z_all = self._buffer("z", (nb * hw, po), dtype)
        best_all = self._buffer("best", (nb,) + self.pooled_hw + (po,), dtype)
        mask_all = self._buffer("mask", best_all.shape, bool)
        zeros = self._zeros(best_all.shape, dtype)
        half_all = self._buffer("half", (nb, self.pooled_hw[0], self.conv.out_hw[1], po), dtype)
        route = self._buffer("route", (n,) + self.pooled_hw + (po,), self.route_dtype) if training else None
        for s in range(0, n, nb):
            m = min(nb, n - s)
            z, best = z_all[:m * hw], best_all[:m]
            np.matmul(cols[s * hw:(s + m) * hw], weights, out=z)
            if training:
                np.add(z, b, out=z)
            self._max(z.reshape((m,) + self.conv.out_hw + (po,)), best, half_all[:m])
            if training:
                self._route(self._windows(z, m, po), best, route[s:s + m], mask_all[:m], zeros[:m])
            else:
                np.add(best, b, out=best)
            if self.relu:  # against an array of zeros: NumPy's maximum with a scalar is not vectorised
                np.maximum(best, zeros[:m], out=best)
            np.copyto(out[s:s + m], best.transpose(0, 3, 1, 2))
        self._cols, self._route_all = cols, route
        return out

    def _max(self, z4, best, half):
        """best (m, Hq, Wq, P*O) := the window maxima of z4 (m, Ho, Wo, P*O): over the ph rows
        of each window first (whole conv rows, long contiguous runs), into half (m, Hq, Wo,
        P*O), then over its pw columns. The maximum is exact, so the order does not matter."""
        rows = [z4[:, si] for si in self.rows]
        if len(rows) > 1:
            np.maximum(rows[0], rows[1], out=half)
            for r in rows[2:]:
                np.maximum(half, r, out=half)
            rows = [half]
        cols = [rows[0][:, :, sj] for sj in self.cols]
        if len(cols) == 1:
            np.copyto(best, cols[0])
        else:
            np.maximum(cols[0], cols[1], out=best)
            for c in cols[2:]:
                np.maximum(best, c, out=best)

    def _zeros(self, shape, dtype):
        """An array of zeros (relu's other operand), refilled: it shares no memory with others."""
        zeros = self._buffer("zeros", shape, dtype)
        zeros.fill(0)
        return zeros

    def _route(self, q, best, route, mask, zeros):
        """route (m, Hq, Wq, P*O) := the first k with ``q[k] == best``, or K where relu's
        gradient is zero (``best <= 0``).

        Horner's scheme on the "not the maximum" flags e_k, from the last offset back:
        ``first = e_0 * (1 + e_1 * (1 + ... * (1 + e_{K-2})))`` -- the product stops at the
        first k with ``e_k == 0``, and is K - 1 when none before the last matches.
        """
        flags = mask.view(np.uint8)
        one, k = self.route_dtype.type(1), self.route_dtype.type(len(q))
        if len(q) == 1:
            route.fill(0)
        else:
            np.not_equal(q[-2], best, out=mask)
            np.copyto(route, flags)
            for qk in reversed(q[:-2]):
                np.add(route, one, out=route)
                np.not_equal(qk, best, out=mask)
                np.multiply(route, flags, out=route)
        if self.relu:  # route := K where best <= 0: (route - K) * [best > 0] + K, in wrapping uints
            np.greater(best, zeros, out=mask)
            np.subtract(route, k, out=route)
            np.multiply(route, flags, out=route)
            np.add(route, k, out=route)

    def backward(self, dout, need_dx, params, grads):
        """dout (N, P*O, Hq, Wq), or (N, P, O*Hq*Wq) as the Flatten after this stage passes it
        on -> fills the kernel and bias gradients; returns None (nothing below the first
        parametric layer learns)."""
        gk, gb = grads[self.keys[0]], grads[self.keys[1]]
        p, o = gk.shape[:2]
        n = dout.shape[0]
        d5 = dout.reshape((n, p, o) + self.pooled_hw)  # a view for both layouts
        dz, sums = self._route_gradient(d5)
        bad = np.flatnonzero(~np.isfinite(sums))
        if bad.size:  # see _route_gradient
            self._route_exactly(d5, dz, bad)
            sums[bad] = dz[:, bad].sum(axis=0)
        gb[...] = sums.reshape(gb.shape)
        gk[...] = (dz.T @ self._cols).reshape(gk.shape)
        return None

    def _route_gradient(self, d5):
        """The conv output gradient dz (N*Ho*Wo, P*O) from the pooled one d5 (N, P, O, Hq, Wq),
        and its column sums ``dz.sum(axis=0)``, the bias gradient.

        Each window offset's cells get ``dm * [route == k]``: the routed value itself, or a
        zero (of dm's sign). That is what the unfused stages' ``np.where`` gives (the sign
        of a zero changes no later number) except where dm holds inf or NaN, as ``inf * 0``
        is NaN; then the column's sum is not finite, and the caller redoes that column with
        :meth:`_route_exactly`. (A masked copy throughout would be exact, but is several
        times slower on these irregular masks.)

        The sums are taken block by block while the block is in the cache, as one chain:
        NumPy sums a C-contiguous array over axis 0 row after row, so the running sum,
        written over the row just before the block (and put back after), continues the
        very additions of ``dz.sum(axis=0)``.
        """
        n, (p, o), hw, route = d5.shape[0], d5.shape[1:3], self.hw, self._route_all
        po = p * o
        nb = self._block(po, d5.dtype.itemsize)
        dz_all = self._buffer("dz", (n * hw, po), d5.dtype)
        dm_all = self._buffer("best", (nb,) + self.pooled_hw + (po,), d5.dtype)
        mask_all = self._buffer("mask", dm_all.shape, bool)
        sums, saved = np.empty(po, d5.dtype), np.empty(po, d5.dtype)
        for s in range(0, n, nb):
            m = min(nb, n - s)
            dm, mask, dz = dm_all[:m], mask_all[:m], dz_all[s * hw:(s + m) * hw]
            # NHWC, as the windows: (m, Hq, Wq, P, O) from (m, P, O, Hq, Wq)
            np.copyto(dm.reshape(dm.shape[:3] + (p, o)), d5[s:s + m].transpose(0, 3, 4, 1, 2))
            if not self.covers:  # cells outside every window get no gradient
                dz.fill(0)
            for k, dzk in enumerate(self._windows(dz, m, po)):
                np.equal(route[s:s + m], self.route_dtype.type(k), out=mask)
                np.multiply(dm, mask, out=dzk)
            if s == 0:
                np.sum(dz, axis=0, out=sums)
            else:
                before = dz_all[s * hw - 1]
                np.copyto(saved, before)
                np.copyto(before, sums)
                np.sum(dz_all[s * hw - 1:(s + m) * hw], axis=0, out=sums)
                np.copyto(before, saved)
        return dz_all, sums

    def _route_exactly(self, d5, dz, columns):
        """Redo the conv output gradient dz (N*Ho*Wo, P*O) in ``columns`` (channel indices p*O
        + o) with a masked copy: exact zeros whatever dm holds."""
        n, (p, o) = d5.shape[0], d5.shape[1:3]
        dm = d5.transpose(0, 3, 4, 1, 2).reshape((n,) + self.pooled_hw + (p * o,))[..., columns]
        route = self._route_all[..., columns]
        part = np.zeros((n,) + self.conv.out_hw + (columns.size,), dz.dtype)
        for k, cells in enumerate(part[:, si, sj] for si, sj in self.offsets):
            np.copyto(cells, dm, where=route == k)
        dz[:, columns] = part.reshape(-1, columns.size)
