"""The layers of a population (:mod:`scratch.population`): the scratch ops, wrapped to carry
a leading member axis.

:func:`stages` turns the ops of one scratch model into the stages of a population of
``population.size`` members; parametric stages read their weights from the population's
``params`` (``W[p, ...]``) and write ``grads``.
"""
from __future__ import annotations

import numpy as np

from .layers import ActivationOp, Conv2DOp, DenseOp, DropoutOp, FlattenOp
from .population_convpool import SharedConvMaxPool, fuse

__all__ = ["stages"]


# --------------------------------------------------------------------------- layouts and ops
#
# Activations travel in one of three layouts, chosen so that the big arrays are never
# transposed: "data" (N, ...) before the first parametric layer (shared by every member);
# "channels" (N, P*C, H, W) from the first Conv2D to the Flatten (member p's channels are
# p*C to (p+1)*C - 1, so the scratch pooling and activation ops run on it unchanged, and the
# shared Conv2D's GEMM output (N*Ho*Wo, P*O) is already this layout); "members" (P, N, F)
# from the first Dense on. Flatten turns "channels" into (N, P, C*H*W).
#
# Fast paths, chosen by :func:`stages` only where they give the same numbers: the first
# Conv2D, its relu and a max pool whose windows tile its output as one stage
# (:mod:`scratch.population_convpool`), and a relu right after a Dense run by the Dense.


class _SharedConv:
    """The first Conv2D: data (N, C, H, W) -> channels (N, P*O, Ho, Wo), one GEMM."""

    def __init__(self, op: Conv2DOp, keys):
        self.op, self.keys = op, keys

    def forward(self, x, training, params):
        kernel, bias = params[self.keys[0]], params[self.keys[1]]
        p, o = kernel.shape[:2]
        ho, wo = self.op.out_hw
        cols, _ = self.op.columns(x)
        out = cols @ kernel.reshape(p * o, -1).T           # (N*Ho*Wo, P*O)
        out += bias.reshape(-1)
        self._cols = cols
        return out.reshape(x.shape[0], ho, wo, p * o).transpose(0, 3, 1, 2)

    def backward(self, dout, need_dx, params, grads):
        gk, gb = grads[self.keys[0]], grads[self.keys[1]]
        dmat = dout.transpose(0, 2, 3, 1).reshape(-1, dout.shape[1])  # (N*Ho*Wo, P*O)
        gk[...] = (dmat.T @ self._cols).reshape(gk.shape)
        gb[...] = dmat.sum(axis=0).reshape(gb.shape)
        return None  # the data's gradient is never needed


class _MemberConv:
    """A later Conv2D: channels (N, P*C, H, W) -> channels (N, P*O, Ho, Wo), one batched
    product of every member's columns (P, N*Ho*Wo, C*kh*kw) with its own filters."""

    def __init__(self, op: Conv2DOp, keys):
        self.op, self.keys = op, keys

    def forward(self, x, training, params):
        kernel, bias = params[self.keys[0]], params[self.keys[1]]
        p, o = kernel.shape[:2]
        n = x.shape[0]
        ho, wo = self.op.out_hw
        xp = self.op.pad(x)
        self._padded = xp.shape[1:]
        members = xp.reshape(n, p, -1).transpose(1, 0, 2)              # (P, N, C*Hp*Wp) view
        cols = np.take(members, self.op.im2col_indices, axis=2).reshape(p, n * ho * wo, -1)
        out = cols @ kernel.reshape(p, o, -1).transpose(0, 2, 1)      # (P, N*Ho*Wo, O)
        out += bias[:, None, :]
        self._cols = cols
        return out.reshape(p, n, ho, wo, o).transpose(1, 0, 4, 2, 3).reshape(n, p * o, ho, wo)

    def backward(self, dout, need_dx, params, grads):
        kernel = params[self.keys[0]]
        gk, gb = grads[self.keys[0]], grads[self.keys[1]]
        p, o = kernel.shape[:2]
        n, _, ho, wo = dout.shape
        dmat = dout.reshape(n, p, o, ho, wo).transpose(1, 0, 3, 4, 2).reshape(p, -1, o)  # (P, N*Ho*Wo, O)
        gk[...] = (dmat.transpose(0, 2, 1) @ self._cols).reshape(gk.shape)
        gb[...] = dmat.sum(axis=1)
        if not need_dx:
            return None
        dcols = (dmat @ kernel.reshape(p, o, -1)).reshape(p * n * ho * wo, -1)
        dx = self.op.input_gradient(dcols, (p * n, self.op.input_shape[0]) + self._padded[1:])
        return dx.reshape((p, n) + dx.shape[1:]).transpose(1, 0, 2, 3, 4).reshape((n, -1) + dx.shape[2:])


class _Flatten:
    """channels (N, P*C, H, W) -> (N, P, C*H*W): each member's features in C, H, W order.

    ``takes_features``: the stage before it takes its gradient as (N, P, C*H*W) too, so the
    backward pass hands it on as it is (a transposed view) instead of copying it into the
    channels layout."""

    def __init__(self, op, population, takes_features=False):
        self.op, self.population, self.takes_features = op, population, takes_features

    def forward(self, x, training):
        self._shape = x.shape
        return x.reshape(x.shape[0], self.population.size, -1)

    def backward(self, dout, need_dx=True):
        return dout if self.takes_features else dout.reshape(self._shape)


class _MemberDense:
    """A Dense: data (N, F), flattened channels (N, P, F) or members (P, N, F) -> members
    (P, N, units), one (batched) product; with ``relu``, its relu activation too.

    relu runs in place on the product (nothing else holds it), and its backward multiplies
    the gradient by ``[y > 0]`` (``y > 0`` exactly where the pre-activation is): the
    scratch op's ``np.where(x > 0, dout, 0)`` up to the sign of zeros, which changes no later
    number, except where dout holds inf or NaN (``inf * 0`` is NaN). Those make the bias
    gradient, a sum over every sample, non-finite, and then the exact form is used."""

    def __init__(self, op: DenseOp, keys, source: str, relu: bool = False):
        self.op, self.keys, self.source, self.relu = op, keys, source, relu
        #: Set by :func:`stages` when a later stage consumes the output within the pass: it
        #: is then written into storage kept from call to call (big arrays allocated anew
        #: cost page faults), one for training and one for evaluation.
        self.reuse = False
        self._storage = {}

    def forward(self, x, training, params):
        kernel, bias = params[self.keys[0]], params[self.keys[1]]
        p, f, u = kernel.shape
        if self.source == "data":  # one GEMM with every member's kernel
            out = (x @ kernel.transpose(1, 0, 2).reshape(f, p * u)).reshape(-1, p, u)
            out += bias
            out = out.transpose(1, 0, 2)
            self._x = x
        else:
            xm = x.transpose(1, 0, 2) if self.source == "flat" else x   # (P, N, F)
            out = np.matmul(xm, kernel, out=self._output((p, xm.shape[1], u), kernel.dtype, training))
            out += bias[:, None, :]
            self._x = xm
        if self.relu:  # against an array of zeros: NumPy's maximum with a scalar is not vectorised
            np.maximum(out, self._zeros(out), out=out)
            self._y = out
        return out

    def _output(self, shape, dtype, training):
        if not self.reuse:
            return None
        size = int(np.prod(shape))
        flat = self._storage.get(training)
        if flat is None or flat.size < size or flat.dtype != dtype:
            flat = self._storage[training] = np.empty(size, dtype)
        return flat[:size].reshape(shape)

    def _zeros(self, like):
        """Zeros of ``like``'s shape (P, N, U) and dtype: the first N samples of the largest
        batch seen, kept from call to call (never written)."""
        z = getattr(self, "_zero_buf", None)
        p, n, u = like.shape
        if z is None or z.shape[1] < n or (z.shape[0], z.shape[2], z.dtype) != (p, u, like.dtype):
            z = self._zero_buf = np.zeros(like.shape, like.dtype)
        return z[:, :n]

    def backward(self, dout, need_dx, params, grads):
        kernel = params[self.keys[0]]
        gk, gb = grads[self.keys[0]], grads[self.keys[1]]
        p, f, u = kernel.shape
        d = np.multiply(dout, np.greater(self._y, self._zeros(self._y))) if self.relu else dout
        if self.source == "data":
            dmat = d.transpose(1, 0, 2).reshape(-1, p * u)                 # (N, P*U)
            sums = dmat.sum(axis=0)
            if self.relu and not np.all(np.isfinite(sums)):
                dmat = self._exact(dout).transpose(1, 0, 2).reshape(-1, p * u)
                sums = dmat.sum(axis=0)
            gk[...] = (self._x.T @ dmat).reshape(f, p, u).transpose(1, 0, 2)
            gb[...] = sums.reshape(p, u)
            return None
        sums = d.sum(axis=1)
        if self.relu and not np.all(np.isfinite(sums)):
            d = self._exact(dout)
            sums = d.sum(axis=1)
        gk[...] = self._x.transpose(0, 2, 1) @ d
        gb[...] = sums
        if not need_dx:
            return None
        dout = d
        dx = dout @ kernel.transpose(0, 2, 1)                              # (P, N, F)
        return dx.transpose(1, 0, 2) if self.source == "flat" else dx

    def _exact(self, dout):
        """relu's backward as the scratch op computes it."""
        return np.where(self._y > 0, dout, dout.dtype.type(0))


class _MemberOp:
    """A scratch activation or dropout op on the members layout (P, N, F): run on (P*N, F)
    (a softmax is over each sample's features); dropout draws one mask (N, F) for all
    members, the mask each member's own model would draw from its identically seeded
    generator."""

    def __init__(self, op):
        self.op = op

    def forward(self, x, training):
        p, n = x.shape[:2]
        if isinstance(self.op, DropoutOp):
            return self._dropout(x, training)
        return self.op.forward(x.reshape((p * n,) + x.shape[2:]), training).reshape(x.shape)

    def _dropout(self, x, training):
        op = self.op
        if not training or op.rate == 0.0:
            self._mask = None
            return x
        keep = op.rng.random(x.shape[1:]) >= op.rate
        self._mask = keep.astype(x.dtype) / x.dtype.type(1.0 - op.rate)
        return x * self._mask

    def backward(self, dout, need_dx=True):
        if isinstance(self.op, DropoutOp):
            return dout if self._mask is None else dout * self._mask
        p, n = dout.shape[:2]
        return self.op.backward(dout.reshape((p * n,) + dout.shape[2:]), True).reshape(dout.shape)


class _ChannelDropout:
    """Dropout on channels (N, P*C, H, W): one mask (N, C, H, W) shared by the members."""

    def __init__(self, op, population):
        self.op, self.population = op, population

    def forward(self, x, training):
        op = self.op
        if not training or op.rate == 0.0:
            self._mask = None
            return x
        n, p = x.shape[0], self.population.size
        keep = op.rng.random((n,) + op.input_shape) >= op.rate
        self._mask = (keep.astype(x.dtype) / x.dtype.type(1.0 - op.rate))[:, None]
        return (x.reshape((n, p) + op.input_shape) * self._mask).reshape(x.shape)

    def backward(self, dout, need_dx=True):
        if self._mask is None:
            return dout
        n, p = dout.shape[0], self.population.size
        return (dout.reshape((n, p) + self.op.input_shape) * self._mask).reshape(dout.shape)


def stages(ops, population) -> list:
    """``(stage, parametric)`` pairs for the scratch ops, each taking and giving the layout
    its position implies (see the layouts above)."""
    stages, layout = [], "data"

    def unsupported(op):
        return ValueError(f"{op.name}: a population cannot run this layer in the {layout} layout "
                          "(a softmax before the last layer, or a network that does not end in Dense)")

    i = 0
    while i < len(ops):
        op = ops[i]
        i += 1
        keys = (f"{op.index}.kernel", f"{op.index}.bias")
        if isinstance(op, Conv2DOp):
            if layout not in ("data", "channels"):
                raise unsupported(op)
            fused = fuse(ops, i - 1, keys) if layout == "data" else None
            if fused is not None:  # the conv, its relu and a tiling max pool as one stage
                stages.append((fused[0], True))
                i += fused[1] - 1
            else:
                stages.append((_SharedConv(op, keys) if layout == "data" else _MemberConv(op, keys), True))
            layout = "channels"
        elif isinstance(op, DenseOp):
            if layout == "channels":  # cannot happen: a Dense needs a flat input, a Flatten first
                raise unsupported(op)
            relu = i < len(ops) and isinstance(ops[i], ActivationOp) and ops[i].act.name == "relu"
            stages.append((_MemberDense(op, keys, layout, relu=relu), True))
            i += relu
            layout = "members"
        elif layout == "data":
            stages.append((op, False))
        elif isinstance(op, FlattenOp):
            if layout == "channels":
                takes = isinstance(stages[-1][0], SharedConvMaxPool)
                stages.append((_Flatten(op, population, takes_features=takes), False))
                layout = "flat"
            else:
                stages.append((_Identity(), False))
        elif layout == "members":
            stages.append((_MemberOp(op), False))
        elif isinstance(op, DropoutOp):
            stages.append((_ChannelDropout(op, population), False))
        elif getattr(op, "act", None) is not None and op.act.name == "softmax":
            raise unsupported(op)
        else:  # pooling and element-wise activations act per channel: the scratch op itself
            stages.append((op, False))
    if layout != "members":
        raise ValueError("layers: a population needs a network that ends in a Dense layer")
    for stage, _ in stages[:-1]:  # the last stage's output leaves the population
        if isinstance(stage, _MemberDense):
            stage.reuse = True
    return stages


class _Identity:
    """A Flatten of what is already flat."""

    def forward(self, x, training):
        return x

    def backward(self, dout, need_dx=True):
        return dout
