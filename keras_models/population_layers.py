"""The wide network of a Keras population: P members of one spec-built ``keras.Sequential``
as one ``keras.Sequential`` of Keras's own layers, each layer carrying every member.

:func:`wide_network` reads the member model layer by layer and writes its wide twin. The
layers are clones of the member model's (``from_config`` of their ``get_config``), widened:

* **data** ``(N, H, W, C)`` or ``(N, F)``: the layers before the first Conv2D or Dense see
  the shared data and are the member's layers unchanged.
* **channels** ``(N, H, W, P*C)``: member ``p``'s channels are ``p*C`` to ``(p+1)*C - 1``.
  The first Conv2D is ``Conv2D(P*O)`` on the shared data (one convolution takes every
  member's filters); a later Conv2D is ``Conv2D(P*O, groups=P)`` (group ``p`` reads member
  ``p``'s channels with member ``p``'s filters); the first one and a tiling MaxPool2D
  after it run as one :class:`PooledConv`. Pooling and element-wise activations act
  per channel and are the member's layers unchanged; a softmax (over a member's channels)
  runs on ``(N, H, W, P, C)`` between two ``Reshape`` s.
* **members** ``(P, N, F)``: the member axis first, so that every Dense is one batched
  product. ``Flatten`` becomes a reshape to ``(N, H, W, P, C)`` and a transpose to
  ``(P, N, H*W*C)``: member ``p``'s features keep the member's H, W, C order. A Dense is
  ``EinsumDense("pnf,pfu->pnu")`` with a bias per member (``"nf,pfu->npu"`` on shared
  features, then transposed); its activation acts on the last axis, a member's units, as
  the member's does.

The wide layers hold no weights of their own: the members' weights, ``(P,) + member
shape`` each, become the wide layers' variables inside the compiled step
(:meth:`WideNetwork.variables`, run with ``stateless_call``), so gradients come back per
member. Members never mix: every wide product reads one member's channels or features.
"""
from __future__ import annotations

import math

import keras
from keras import layers as KL

from scratch import spec as S

from .builder import entry_shapes, to_keras_shape
from .layout import weight_plan

__all__ = ["PooledConv", "WideNetwork", "member_keys"]


def _clone(layer, **changes):
    config = {**layer.get_config(), **changes}
    config.pop("name", None)
    return type(layer).from_config(config)


def _member_softmax(shape, size, dtype):
    """Softmax over each member's channels of a (H, W, P*C) activation."""
    h, w, c = shape
    return [KL.Reshape((h, w, size, c), dtype=dtype), KL.Activation("softmax", dtype=dtype),
            KL.Reshape((h, w, size * c), dtype=dtype)]


def _is_softmax(activation) -> bool:
    return activation is keras.activations.softmax


class PooledConv(KL.Layer):
    """A Conv2D on the shared data, its relu (or none) and the MaxPool2D after it, as one
    layer: ``(N, H, W, C)`` -> ``(N, Hp, Wp, P*O)``, or the same from the data's window
    columns (:meth:`columns`; ``from_columns=(Hp, Wp)``), which a population can take once
    per data set instead of once per batch.

    Why: with P members the wide convolution writes ``P*O`` channels, and TensorFlow's
    pooling gradient on that many channels costs several times the convolution (measured
    on 49 members of ``course_cnn``: 19 ms of a 21 ms forward and backward; 12 ms this way).

    How: for each offset ``(i, j)`` of the pooling window, in row-major order, the patches
    of the cells that offset holds in every window, each with a trailing 1 (the bias's
    column: the bias is one more row of the kernel, so no pass adds it), are one matrix
    product's rows; the pooled pre-activation is the running ``maximum`` of the products,
    and the activation comes last. That is the member layers' result exactly: relu is
    non-decreasing, so ``max(relu(z)) == relu(max(z))``; the gradient reaches the first
    maximal ``z`` in window order (``maximum`` sends ties to its first argument), which is
    the cell MaxPool2D routes to when the maximum is > 0, and when it is <= 0 relu's
    gradient is 0 either way. Used where that holds: the pooling tiles (pool size equal
    to its strides, valid padding) and the activation is relu or none.

    Its variables are the wide Conv2D's: ``kernel (kh, kw, C, P*O)``, ``bias (P*O,)``.
    """

    def __init__(self, conv, pool, from_columns: tuple | None = None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size, self.conv_strides = tuple(conv.kernel_size), tuple(conv.strides)
        self.conv_padding, self.filters = conv.padding, conv.filters
        self.pool_size = tuple(pool.pool_size)
        self.relu = conv.activation is keras.activations.relu
        self.from_columns = None if from_columns is None else tuple(from_columns)  # (Hp, Wp)

    def build(self, input_shape):
        kh, kw = self.kernel_size
        channels = (input_shape[-1] - 1) // (kh * kw) if self.from_columns else input_shape[-1]
        self.kernel = self.add_weight(shape=(kh, kw, channels, self.filters), name="kernel")
        self.bias = self.add_weight(shape=(self.filters,), name="bias", initializer="zeros")

    def columns(self, x):
        """The window columns of NHWC data ``x``: ``(N, ph*pw, Hp*Wp, kh*kw*C + 1)``, where
        ``[:, i*pw + j, a*Wp + b]`` is the patch (in Keras's kh, kw, C order) under pooling
        offset ``(i, j)`` of window ``(a, b)``, followed by a 1."""
        return self._columns(x)[0]

    def _columns(self, x):
        """(window columns, (Hp, Wp)) of NHWC data ``x``."""
        ops = keras.ops
        patches = ops.image.extract_patches(x, self.kernel_size, strides=self.conv_strides,
                                            padding=self.conv_padding)        # (N, Ho, Wo, kh*kw*C)
        (ph, pw), (ho, wo), k = self.pool_size, patches.shape[1:3], patches.shape[3]
        hp, wp = ho // ph, wo // pw
        cells = [ops.reshape(patches[:, i:i + ph * hp:ph, j:j + pw * wp:pw, :], (-1, 1, hp * wp, k))
                 for i in range(ph) for j in range(pw)]
        cells = ops.concatenate(cells, axis=1)
        return ops.concatenate([cells, ops.ones_like(cells[..., :1])], axis=-1), (hp, wp)

    def call(self, x):
        ops = keras.ops
        cols, (hp, wp) = (x, self.from_columns) if self.from_columns else self._columns(x)
        kernel = ops.concatenate([ops.reshape(self.kernel, (-1, self.filters)), self.bias[None]], axis=0)
        best = None
        for o in range(cols.shape[1]):
            z = ops.matmul(ops.reshape(cols[:, o], (-1, kernel.shape[0])), kernel)
            best = z if best is None else ops.maximum(best, z)
        if self.relu:
            best = ops.relu(best)
        return ops.reshape(best, (-1, hp, wp, self.filters))


def _pooled(entry, after) -> bool:
    """Whether the Conv2D ``entry`` on the shared data and the layer ``after`` it fuse
    into a :class:`PooledConv`."""
    return (isinstance(after, S.MaxPool2D) and after.padding == "valid" and after.strides == after.pool_size
            and (entry.activation is None or entry.activation.name in ("identity", "relu")))


class WideNetwork:
    """The wide network of ``size`` members of the spec-built ``model``.

    ``model``: the member model (:func:`keras_models.build`); ``spec``, its layers;
    ``input_shape``: canonical. Calling it on the members' weights and NHWC data
    ``(N, H, W, C)`` (or ``(N, F)``) gives every member's outputs ``(P, N) + output_shape``.
    A network that starts with a :class:`PooledConv` also takes the data's window columns
    (:attr:`columns`), which a population computes once per data set instead of once per
    batch (its body takes them; NHWC data are turned into them first).
    Raises ValueError for a network with no Conv2D or Dense (nothing per member to train)
    or with a Dropout.

    Attributes
    ----------
    columns : callable or None
        NHWC data -> the window columns of the first layer, a :class:`PooledConv`;
        None when the network starts otherwise.
    image_shape : tuple
        The NHWC sample shape (H, W, C), or (F,).
    body : keras.Sequential
        The data and channel stages (and a Dense on shared features), data in (NHWC, or
        the window columns when there are :attr:`columns`).
    head : keras.Sequential or None
        The member stage, ``(P, N, F)`` in.
    kinds : tuple of "Conv2D" / "Dense"
        The parametric layers in order; their weights alternate kernel, bias.
    """

    def __init__(self, model, spec, input_shape, size: int, dtype: str):
        shapes = entry_shapes(spec, input_shape)
        self.columns = None
        self.size, stage, body, head, kinds = size, "data", [], [], []
        self._flat = None  # (H, W, C) of the Flatten that starts the member stage
        fused = False  # the MaxPool2D was taken into the PooledConv before it
        for n, (entry, layer, (inp, out)) in enumerate(zip(spec, model.layers, shapes)):
            out_k = to_keras_shape(out)
            if fused:
                fused = False
                continue
            if isinstance(entry, S.Dropout) and entry.rate > 0:
                raise ValueError("layers: a Keras population has no per-member dropout masks; "
                                 "train networks with Dropout cell by cell")
            if stage == "members":
                if isinstance(entry, S.Dense):
                    head.append(KL.EinsumDense("pnf,pfu->pnu", (None, entry.units), bias_axes="pu",
                                               activation=layer.activation, dtype=dtype))
                    kinds.append("Dense")
                else:  # element-wise activations and softmax act on a member's units
                    head.append(_clone(layer))
            elif isinstance(entry, S.Conv2D):
                softmax = _is_softmax(layer.activation)
                changes = {"filters": size * entry.filters, "kernel_regularizer": None}
                if softmax:
                    changes["activation"] = "linear"
                if stage == "channels":
                    changes["groups"] = size
                fused = stage == "data" and n + 1 < len(spec) and _pooled(entry, spec[n + 1])
                wide = _clone(layer, **changes)
                if fused:
                    pool, pooled = model.layers[n + 1], None
                    if not body:  # the first layer: it may take the data's window columns
                        self.columns = PooledConv(wide, pool, dtype=dtype).columns
                        pooled = to_keras_shape(shapes[n + 1][1])[:2]
                    body.append(PooledConv(wide, pool, from_columns=pooled, dtype=dtype))
                else:
                    body.append(wide)
                if softmax:
                    body.extend(_member_softmax(out_k, size, dtype))
                kinds.append("Conv2D")
                stage = "channels"
            elif isinstance(entry, S.Dense):  # on the shared data: (N, P, U), transposed below
                body.append(KL.EinsumDense("nf,pfu->npu", (size, entry.units), bias_axes="pu",
                                           activation=layer.activation, dtype=dtype))
                kinds.append("Dense")
                stage = "members"
            elif isinstance(entry, S.Flatten) and stage == "channels":
                self._flat = to_keras_shape(inp)
                stage = "members"
            elif stage == "channels" and isinstance(entry, S.Activation) and entry.name == "softmax":
                body.extend(_member_softmax(out_k, size, dtype))
            else:  # data-stage layers, pooling and element-wise activations
                body.append(_clone(layer))
        if not kinds:
            raise ValueError("layers: a population needs a Conv2D or Dense layer (its members' weights)")
        self.kinds, self.stage = tuple(kinds), stage
        self.image_shape = data_shape = to_keras_shape(input_shape)
        if self.columns is not None:  # (ph*pw, Hp*Wp, kh*kw*C + 1)
            data_shape = tuple(self.columns(keras.ops.zeros((1,) + data_shape, dtype=dtype)).shape[1:])
        self.body = keras.Sequential([keras.Input(shape=data_shape, dtype=dtype)] + body)
        n_body = 2 * sum(isinstance(l, (KL.Conv2D, KL.EinsumDense, PooledConv)) for l in body)
        self._split = n_body
        if head:
            features = self.body.outputs[0].shape[-1] if self._flat is None else math.prod(self._flat)
            self.head = keras.Sequential([keras.Input(batch_shape=(size, None, features), dtype=dtype)] + head)
        else:
            self.head = None

    def variables(self, weights) -> list:
        """The members' weights ``[(P,) + member shape]`` as the wide layers' variables.

        A Conv2D kernel ``(P, kh, kw, C, O)`` becomes ``(kh, kw, C, P*O)`` (column
        ``p*O + o`` is member ``p``'s filter ``o``), its bias ``(P, O)`` becomes ``(P*O,)``;
        a Dense kernel ``(P, F, U)`` is the EinsumDense's as it is, and its bias ``(P, U)``
        is ``(P, 1, U)`` in the member stage."""
        out = []
        for i, (kind, kernel, bias) in enumerate(zip(self.kinds, weights[0::2], weights[1::2])):
            if kind == "Conv2D":
                p, kh, kw, c, o = kernel.shape
                kernel = keras.ops.reshape(keras.ops.transpose(kernel, (1, 2, 3, 0, 4)), (kh, kw, c, p * o))
                bias = keras.ops.reshape(bias, (-1,))
            elif 2 * i >= self._split:
                bias = keras.ops.expand_dims(bias, 1)
            out.extend([kernel, bias])
        return out

    def __call__(self, weights, x, training: bool):
        """Every member's outputs ``(P, N) + output_shape`` for the shared data ``x`` (NHWC,
        or its window columns when the network has :attr:`columns`)."""
        if self.columns is not None and tuple(x.shape[1:]) == self.image_shape:
            x = self.columns(x)
        wide = self.variables(weights)
        h, _ = self.body.stateless_call(wide[:self._split], [], x, training=training)
        if self._flat is not None:  # (N, H, W, P*C) -> (P, N, H*W*C)
            hh, ww, c = self._flat
            h = keras.ops.reshape(keras.ops.transpose(keras.ops.reshape(h, (-1, hh, ww, self.size, c)),
                                                      (3, 0, 1, 2, 4)), (self.size, -1, hh * ww * c))
        elif self.stage == "members":  # a Dense on the shared data gave (N, P, U)
            h = keras.ops.transpose(h, (1, 0, 2))
        if self.head is not None:
            h, _ = self.head.stateless_call(wide[self._split:], [], h, training=training)
        return h


def member_keys(model) -> list:
    """The scratch keys of the member model's weights, in variable order:
    ``["<index>.kernel", "<index>.bias", ...]``."""
    return [f"{item['index']}.{key}" for item in weight_plan(model) for key in ("kernel", "bias")]
