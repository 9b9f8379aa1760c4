"""Vectorised NumPy layers of the scratch engine.

Each layer follows numpy-ml's pattern: parameters in ``self.params`` and gradients in
``self.grads``, dicts with the same keys (``"kernel"``, ``"bias"``) and shapes. Shapes
below leave out the batch axis N, which comes first everywhere.

Layouts (see docs/DESIGN.md, 'Canonical layout'): activations are NCHW; a Conv2D kernel is
``W[out, in, kh, kw]``; a Dense kernel is ``W[in, out]`` (``y = x W + b``).

No Python loop runs over samples or pixels: convolutions and pooling read all windows
at once through :func:`numpy.lib.stride_tricks.sliding_window_view` and reduce them
with one matrix product (or one reduction). The backward passes loop over the
``kh * kw`` kernel offsets only, adding one strided slice of the input gradient each.

Every op keeps the dtype of its input; the model checks that the input dtype is the
model's dtype before the first op runs.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import spec as S


class ShapeError(ValueError):
    """A layer cannot take the shape it is given; the message names the layer."""


def conv_output_size(size: int, kernel: int, stride: int, padding: str):
    """Output length and (before, after) padding along one axis, by TensorFlow's rule.

    ``valid``: ``out = floor((size - kernel) / stride) + 1``, no padding.
    ``same``: ``out = ceil(size / stride)``, total padding
    ``max((out - 1) * stride + kernel - size, 0)``, the odd cell at the end (bottom/right).
    """
    if padding == "valid":
        out = (size - kernel) // stride + 1 if size >= kernel else 0
        return out, (0, 0)
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, (total // 2, total - total // 2)


def _strided(start: int, stride: int, count: int) -> slice:
    """The slice start, start+stride, ..., count elements long."""
    return slice(start, start + stride * (count - 1) + 1, stride)


def _windows(xp: np.ndarray, size, strides, out_hw) -> np.ndarray:
    """All (kh, kw) windows of padded NCHW ``xp``: a strided view (N, C, Ho, Wo, kh, kw)."""
    (kh, kw), (sh, sw), (ho, wo) = size, strides, out_hw
    view = sliding_window_view(xp, (kh, kw), axis=(2, 3))
    return view[:, :, ::sh, ::sw][:, :, :ho, :wo]


class Op:
    """One step of the forward pass. ``index`` is the spec entry it belongs to."""

    kind = "Op"
    params: dict
    grads: dict

    def __init__(self, index: int, input_shape: tuple):
        self.index = index
        self.input_shape = tuple(input_shape)
        self.params, self.grads = {}, {}
        self.output_shape = self.input_shape

    @property
    def name(self) -> str:
        return f"layer {self.index} ({self.kind})"

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray, need_dx: bool = True) -> np.ndarray:
        """Fill ``self.grads`` and return the input gradient (None allowed when not ``need_dx``)."""
        raise NotImplementedError


# --------------------------------------------------------------------------- parametric
class Conv2DOp(Op):
    """2-D cross-correlation, NCHW.

    Input (C, H, W) -> output (filters, Ho, Wo). Parameters: ``kernel`` (filters, C, kh, kw),
    ``bias`` (filters,). ``same`` padding follows TensorFlow for every stride.
    """

    kind = "Conv2D"

    def __init__(self, index, input_shape, layer: S.Conv2D, dtype):
        super().__init__(index, input_shape)
        if len(self.input_shape) != 3:
            raise ShapeError(
                f"{self.name}: expects an input of shape (channels, height, width), got {self.input_shape}; "
                "a Conv2D cannot follow a Flatten or Dense"
            )
        c, h, w = self.input_shape
        (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
        ho, self.pad_h = conv_output_size(h, kh, sh, layer.padding)
        wo, self.pad_w = conv_output_size(w, kw, sw, layer.padding)
        if ho <= 0 or wo <= 0:
            raise ShapeError(
                f"{self.name}: kernel {layer.kernel_size} is larger than its padded input "
                f"{(h + sum(self.pad_h), w + sum(self.pad_w))} (input shape {self.input_shape}, padding {layer.padding!r})"
            )
        self.kernel_size, self.strides, self.out_hw = (kh, kw), (sh, sw), (ho, wo)
        self.output_shape = (layer.filters, ho, wo)
        # im2col as one gather: flat indices into a padded sample (C*Hp*Wp), shape
        # (Ho*Wo, C*kh*kw), so that np.take builds the GEMM-ready (N, Ho*Wo, C*kh*kw)
        # columns directly, contiguous, with no 6-D transposed copy.
        hp, wp = h + sum(self.pad_h), w + sum(self.pad_w)
        ci, ki, kj = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
        oi, oj = np.meshgrid(np.arange(ho) * sh, np.arange(wo) * sw, indexing="ij")
        self._im2col = ((ci.reshape(1, -1) * hp + ki.reshape(1, -1) + oi.reshape(-1, 1)) * wp
                        + kj.reshape(1, -1) + oj.reshape(-1, 1)).astype(np.intp)
        self.params = {
            "kernel": np.zeros((layer.filters, c, kh, kw), dtype=dtype),
            "bias": np.zeros((layer.filters,), dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def fans(self):
        """Glorot fans as Keras computes them: channels times the receptive field."""
        o, c, kh, kw = self.params["kernel"].shape
        return c * kh * kw, o * kh * kw

    def _pad(self, x):
        if self.pad_h == (0, 0) and self.pad_w == (0, 0):
            return x
        return np.pad(x, ((0, 0), (0, 0), self.pad_h, self.pad_w))

    def forward(self, x, training):
        n = x.shape[0]
        xp = self._pad(x)
        ho, wo = self.out_hw
        o = self.params["kernel"].shape[0]
        # (N*Ho*Wo, C*kh*kw) columns from one gather, then one GEMM.
        cols = np.take(xp.reshape(n, -1), self._im2col, axis=1).reshape(n * ho * wo, -1)
        out = cols @ self.params["kernel"].reshape(o, -1).T
        out += self.params["bias"]
        self._cache = (cols, xp.shape)
        return out.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)

    def backward(self, dout, need_dx=True):
        cols, padded_shape = self._cache
        kernel = self.params["kernel"]
        o, c, kh, kw = kernel.shape
        n, _, ho, wo = dout.shape
        dmat = dout.transpose(0, 2, 3, 1).reshape(-1, o)
        self.grads["kernel"][...] = (dmat.T @ cols).reshape(kernel.shape)
        self.grads["bias"][...] = dmat.sum(axis=0)
        if not need_dx:  # first layer of a training step: the data's gradient is not needed
            return None
        dcols = (dmat @ kernel.reshape(o, -1)).reshape(n, ho, wo, c, kh, kw)
        dxp = np.zeros(padded_shape, dtype=dout.dtype)
        sh, sw = self.strides
        for i in range(kh):  # loop over kernel offsets only; each adds one strided slice
            for j in range(kw):
                dxp[:, :, _strided(i, sh, ho), _strided(j, sw, wo)] += dcols[..., i, j].transpose(0, 3, 1, 2)
        h, w = self.input_shape[1:]
        return dxp[:, :, self.pad_h[0]:self.pad_h[0] + h, self.pad_w[0]:self.pad_w[0] + w]


class DenseOp(Op):
    """Fully connected: input (F,) -> output (units,); ``kernel`` (F, units), ``bias`` (units,)."""

    kind = "Dense"

    def __init__(self, index, input_shape, layer: S.Dense, dtype):
        super().__init__(index, input_shape)
        if len(self.input_shape) != 1:
            raise ShapeError(
                f"{self.name}: expects a flat input (features,), got {self.input_shape}; add a Flatten before it"
            )
        self.output_shape = (layer.units,)
        self.params = {
            "kernel": np.zeros((self.input_shape[0], layer.units), dtype=dtype),
            "bias": np.zeros((layer.units,), dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def fans(self):
        return self.params["kernel"].shape

    def forward(self, x, training):
        self._x = x
        return x @ self.params["kernel"] + self.params["bias"]

    def backward(self, dout, need_dx=True):
        self.grads["kernel"][...] = self._x.T @ dout
        self.grads["bias"][...] = dout.sum(axis=0)
        return dout @ self.params["kernel"].T if need_dx else None


# --------------------------------------------------------------------------- pooling
class _PoolOp(Op):
    def __init__(self, index, input_shape, layer, dtype):
        super().__init__(index, input_shape)
        if len(self.input_shape) != 3:
            raise ShapeError(
                f"{self.name}: expects an input of shape (channels, height, width), got {self.input_shape}"
            )
        c, h, w = self.input_shape
        (ph, pw), (sh, sw) = layer.pool_size, layer.strides
        ho, self.pad_h = conv_output_size(h, ph, sh, layer.padding)
        wo, self.pad_w = conv_output_size(w, pw, sw, layer.padding)
        if ho <= 0 or wo <= 0:
            raise ShapeError(
                f"{self.name}: pool window {layer.pool_size} is larger than its input {(h, w)} "
                f"(input shape {self.input_shape}, padding {layer.padding!r})"
            )
        self.pool_size, self.strides, self.out_hw = (ph, pw), (sh, sw), (ho, wo)
        self.output_shape = (c, ho, wo)

    def _pad(self, x, value):
        if self.pad_h == (0, 0) and self.pad_w == (0, 0):
            return x
        return np.pad(x, ((0, 0), (0, 0), self.pad_h, self.pad_w), constant_values=value)

    def _scatter(self, padded_shape, dtype, contribution):
        """Sum ``contribution(i, j)`` (N, C, Ho, Wo) into the window offsets, then crop."""
        dxp = np.zeros(padded_shape, dtype=dtype)
        (ph, pw), (sh, sw), (ho, wo) = self.pool_size, self.strides, self.out_hw
        for i in range(ph):
            for j in range(pw):
                dxp[:, :, _strided(i, sh, ho), _strided(j, sw, wo)] += contribution(i, j)
        h, w = self.input_shape[1:]
        return dxp[:, :, self.pad_h[0]:self.pad_h[0] + h, self.pad_w[0]:self.pad_w[0] + w]


class MaxPool2DOp(_PoolOp):
    """Max pooling. "same" pads with -inf. The gradient goes to the first maximum of each
    window in row-major order (as TensorFlow and PyTorch do), never to every tied cell."""

    kind = "MaxPool2D"

    def forward(self, x, training):
        xp = self._pad(x, -np.inf)
        (ph, pw), (sh, sw), (ho, wo) = self.pool_size, self.strides, self.out_hw
        # Loop over the ph*pw window offsets (not pixels): a strict ">" keeps the first
        # maximum in row-major window order, the cell TensorFlow and PyTorch route to.
        best = xp[:, :, _strided(0, sh, ho), _strided(0, sw, wo)].copy()
        arg = np.zeros(best.shape, dtype=np.int16)
        for k in range(1, ph * pw):
            i, j = divmod(k, pw)
            cand = xp[:, :, _strided(i, sh, ho), _strided(j, sw, wo)]
            np.putmask(arg, cand > best, k)
            np.maximum(best, cand, out=best)
        self._cache = (arg, xp.shape)
        return best

    def backward(self, dout, need_dx=True):
        arg, padded_shape = self._cache
        pw = self.pool_size[1]
        zero = dout.dtype.type(0)
        return self._scatter(padded_shape, dout.dtype, lambda i, j: np.where(arg == i * pw + j, dout, zero))


class AvgPool2DOp(_PoolOp):
    """Average pooling. With "same" padding each mean is over the real cells only."""

    kind = "AvgPool2D"

    def __init__(self, index, input_shape, layer, dtype):
        super().__init__(index, input_shape, layer, dtype)
        ones = self._pad(np.ones((1, 1) + self.input_shape[1:], dtype=dtype), 0)
        counts = _windows(ones, self.pool_size, self.strides, self.out_hw).sum(axis=(-2, -1))
        self._counts = counts  # (1, 1, Ho, Wo): real cells per window

    def forward(self, x, training):
        xp = self._pad(x, 0)
        self._padded_shape = xp.shape
        return _windows(xp, self.pool_size, self.strides, self.out_hw).sum(axis=(-2, -1)) / self._counts

    def backward(self, dout, need_dx=True):
        g = dout / self._counts
        return self._scatter(self._padded_shape, dout.dtype, lambda i, j: g)


# --------------------------------------------------------------------------- shape / noise
class FlattenOp(Op):
    """(C, H, W) -> (C*H*W,) in C, H, W order (row-major over NCHW)."""

    kind = "Flatten"

    def __init__(self, index, input_shape, layer, dtype):
        super().__init__(index, input_shape)
        self.output_shape = (math.prod(self.input_shape),)

    def forward(self, x, training):
        return x.reshape(x.shape[0], -1)

    def backward(self, dout, need_dx=True):
        return dout.reshape((dout.shape[0],) + self.input_shape)


class DropoutOp(Op):
    """Inverted dropout: in training keep each unit with probability 1-rate and scale it
    by 1/(1-rate); identity at inference. The mask comes from the model's seeded Generator."""

    kind = "Dropout"

    def __init__(self, index, input_shape, layer: S.Dropout, dtype, rng: np.random.Generator):
        super().__init__(index, input_shape)
        self.rate, self.rng = layer.rate, rng
        self._mask = None

    def forward(self, x, training):
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape) >= self.rate
        self._mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.rate)
        return x * self._mask

    def backward(self, dout, need_dx=True):
        return dout if self._mask is None else dout * self._mask


# --------------------------------------------------------------------------- activations
class ActivationOp(Op):
    """Element-wise activation (softmax: over axis 1, the feature/channel axis).

    Derivatives at 0 follow both frameworks: relu'(0) = 0, leaky_relu'(0) = slope.
    """

    kind = "Activation"

    def __init__(self, index, input_shape, act: S.Activation, dtype, fused_in: str | None = None):
        super().__init__(index, input_shape)
        self.act = act
        self.fused_in = fused_in  # "Conv2D"/"Dense" when it is that layer's activation argument

    @property
    def name(self):
        if self.fused_in:
            return f"layer {self.index} ({self.fused_in} activation {self.act.name})"
        return f"layer {self.index} (Activation {self.act.name})"

    def forward(self, x, training):
        name = self.act.name
        if name == "identity":
            y = x
        elif name == "relu":
            y = np.maximum(x, 0)
        elif name == "leaky_relu":
            y = np.where(x > 0, x, x * x.dtype.type(self.act.negative_slope))
        elif name == "sigmoid":
            y = sigmoid(x)
        elif name == "tanh":
            y = np.tanh(x)
        else:
            y = softmax(x)
        self._x, self._y = x, y
        return y

    def backward(self, dout, need_dx=True):
        name, x, y = self.act.name, self._x, self._y
        if name == "identity":
            return dout
        if name == "relu":
            return np.where(x > 0, dout, dout.dtype.type(0))
        if name == "leaky_relu":
            return np.where(x > 0, dout, dout * dout.dtype.type(self.act.negative_slope))
        if name == "sigmoid":
            return dout * y * (1 - y)
        if name == "tanh":
            return dout * (1 - y * y)
        # softmax Jacobian-vector product: y * (g - sum(g * y)) along axis 1
        return y * (dout - np.sum(dout * y, axis=1, keepdims=True))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over axis 1, shifted by the max so large logits do not overflow."""
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


_OPS = {S.Conv2D: Conv2DOp, S.Dense: DenseOp, S.MaxPool2D: MaxPool2DOp, S.AvgPool2D: AvgPool2DOp,
        S.Flatten: FlattenOp}


def make_ops(index: int, layer, input_shape, dtype, rng) -> list:
    """The ops of spec entry ``index``: the layer itself plus its fused activation, if any."""
    if isinstance(layer, S.Activation):
        return [ActivationOp(index, input_shape, layer, dtype)]
    if isinstance(layer, S.Dropout):
        return [DropoutOp(index, input_shape, layer, dtype, rng)]
    op = _OPS[type(layer)](index, input_shape, layer, dtype)
    ops = [op]
    act = getattr(layer, "activation", None)
    if act is not None:
        ops.append(ActivationOp(index, op.output_shape, act, dtype, fused_in=op.kind))
    return ops
