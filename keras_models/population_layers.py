"""The wide network of a Keras population: P members of one spec-built ``keras.Sequential``
as one ``keras.Sequential`` of Keras's own layers, each layer carrying every member.

:func:`wide_network` reads the member model layer by layer and writes its wide twin. The
layers are clones of the member model's (``from_config`` of their ``get_config``), widened:

* **data** ``(N, H, W, C)`` or ``(N, F)``: the layers before the first Conv2D or Dense see
  the shared data and are the member's layers unchanged.
* **channels** ``(N, H, W, P*C)``: member ``p``'s channels are ``p*C`` to ``(p+1)*C - 1``.
  The first Conv2D is ``Conv2D(P*O)`` on the shared data (one convolution takes every
  member's filters); a later Conv2D is ``Conv2D(P*O, groups=P)`` (group ``p`` reads member
  ``p``'s channels with member ``p``'s filters). Pooling and element-wise activations act
  per channel and are the member's layers unchanged; a softmax (over a member's channels)
  runs on ``(N, H, W, P, C)`` between two ``Reshape`` s.
* **members** ``(N, P, F)``: ``Flatten`` becomes ``Reshape((H, W, P, C))``,
  ``Permute((3, 1, 2, 4))`` and ``Reshape((P, H*W*C))``, so member ``p``'s features keep
  the member's H, W, C order. A Dense is ``EinsumDense("npf,pfu->npu")`` with a bias per
  member (``"nf,pfu->npu"`` on shared features); its activation acts on the last axis, a
  member's units, as the member's does.

The wide layers hold no weights of their own: :class:`Widen` turns the members' weights,
``(P,) + member shape`` each, into the wide layers' variables inside the compiled step
(``stateless_call``), so gradients come back per member. Members never mix: every wide
product reads one member's channels or features only.
"""
from __future__ import annotations

import keras
from keras import layers as KL

from scratch import spec as S

from .builder import entry_shapes, to_keras_shape
from .layout import weight_plan

__all__ = ["Widen", "member_keys", "wide_network"]


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


def wide_network(model, spec, input_shape, size: int, dtype: str):
    """(wide ``keras.Sequential``, per parametric entry ``(kind, member kernel shape)``).

    ``model``: the spec-built member model (:func:`keras_models.build`); ``spec``, its
    layers; ``input_shape``: canonical; ``size``: P. Raises ValueError for a network with
    no Conv2D or Dense (nothing per member to train) or with a Dropout.
    """
    shapes = entry_shapes(spec, input_shape)
    stage, wide, kinds = "data", [], []
    for entry, layer, (inp, out) in zip(spec, model.layers, shapes):
        out_k = to_keras_shape(out)
        if isinstance(entry, S.Dropout) and entry.rate > 0:
            raise ValueError("layers: a Keras population has no per-member dropout masks; "
                             "train networks with Dropout cell by cell")
        if isinstance(entry, S.Conv2D):
            softmax = _is_softmax(layer.activation)
            changes = {"filters": size * entry.filters, "kernel_regularizer": None}
            if softmax:
                changes["activation"] = "linear"
            if stage == "channels":
                changes["groups"] = size
            wide.append(_clone(layer, **changes))
            if softmax:
                wide.extend(_member_softmax(out_k, size, dtype))
            kinds.append("Conv2D")
            stage = "channels"
        elif isinstance(entry, S.Dense):
            equation = "nf,pfu->npu" if stage == "data" else "npf,pfu->npu"
            wide.append(KL.EinsumDense(equation, (size, entry.units), bias_axes="pu",
                                       activation=layer.activation, dtype=dtype))
            kinds.append("Dense")
            stage = "members"
        elif isinstance(entry, S.Flatten) and stage == "channels":
            h, w, c = to_keras_shape(inp)
            wide.extend([KL.Reshape((h, w, size, c), dtype=dtype), KL.Permute((3, 1, 2, 4), dtype=dtype),
                         KL.Reshape((size, h * w * c), dtype=dtype)])
            stage = "members"
        elif stage == "channels" and isinstance(entry, S.Activation) and entry.name == "softmax":
            wide.extend(_member_softmax(out_k, size, dtype))
        else:  # data-stage layers, pooling, element-wise activations, a softmax over member units
            wide.append(_clone(layer))
    if not kinds:
        raise ValueError("layers: a population needs a Conv2D or Dense layer (its members' weights)")
    net = keras.Sequential([keras.Input(shape=to_keras_shape(input_shape), dtype=dtype)] + wide)
    return net, kinds


class Widen:
    """Members' weights ``[(P,) + member shape]`` -> the wide layers' variable values.

    A Conv2D kernel ``(P, kh, kw, C, O)`` becomes ``(kh, kw, C, P*O)`` (column ``p*O + o``
    is member ``p``'s filter ``o``), its bias ``(P, O)`` becomes ``(P*O,)``; a Dense kernel
    ``(P, F, U)`` and bias ``(P, U)`` are the EinsumDense's as they are.
    """

    def __init__(self, kinds):
        self.kinds = tuple(kinds)

    def __call__(self, weights):
        out = []
        for kind, kernel, bias in zip(self.kinds, weights[0::2], weights[1::2]):
            if kind == "Conv2D":
                p, kh, kw, c, o = kernel.shape
                kernel = keras.ops.reshape(keras.ops.transpose(kernel, (1, 2, 3, 0, 4)), (kh, kw, c, p * o))
                bias = keras.ops.reshape(bias, (-1,))
            out.extend([kernel, bias])
        return out


def member_keys(model) -> list:
    """The scratch keys of the member model's weights, in variable order:
    ``["<index>.kernel", "<index>.bias", ...]``."""
    return [f"{item['index']}.{key}" for item in weight_plan(model) for key in ("kernel", "bias")]
