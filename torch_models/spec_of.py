"""Read a torch ``nn.Sequential`` back into spec layers: :func:`spec_of`.

The model's children are grouped into spec entries by :func:`torch_models.builder.entries`;
each entry is read by the reader of its main module's kind (one small function per
kind below), which checks the options the spec can express and returns the spec layer
and the shape it outputs. A fused ``"i_<act>"`` child folds back into its ``Conv2D`` or
``Dense``, an ``"i_pad"`` child into the layer's padding.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

from torch import nn

from scratch import spec as S
from scratch.checks import check_input_shape

from .builder import AvgPool2dSame, Entry, entries, same_pads

__all__ = ["SUPPORTED", "spec_of"]

#: What spec_of reads, for error messages.
SUPPORTED = ("Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
             "Softmax", "Identity", "Dropout", "and the ZeroPad2d / ConstantPad2d(-inf) ('i_pad') and "
             "AvgPool2dSame modules that build adds")


# --------------------------------------------------------------------------- helpers
def _unsupported(e: Entry, what: str):
    return ValueError(f"{e.where}: {what}; supported modules: {', '.join(SUPPORTED)}")


def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(u) for u in v)


def _add(a, b):
    return tuple((x[0] + y[0], x[1] + y[1]) for x, y in zip(a, b))


def _activation_of(mod: nn.Module, e: Entry, flat_input: bool) -> Optional[S.Activation]:
    """The spec activation of ``mod``, or None if it is not an activation module."""
    if isinstance(mod, nn.Identity):
        return S.Activation("identity")
    if isinstance(mod, nn.ReLU):
        return S.Activation("relu")
    if isinstance(mod, nn.LeakyReLU):
        try:
            return S.Activation("leaky_relu", float(mod.negative_slope))
        except ValueError as exc:
            raise ValueError(f"{e.where}: {exc}") from None
    if isinstance(mod, nn.Sigmoid):
        return S.Activation("sigmoid")
    if isinstance(mod, nn.Tanh):
        return S.Activation("tanh")
    if isinstance(mod, nn.Softmax):
        ok = (1, None) + ((-1,) if flat_input else ())
        if mod.dim not in ok:
            raise ValueError(f"{e.where}: Softmax(dim={mod.dim}) is not supported; the spec's softmax is over "
                             "dim=1 (the features or channels)")
        return S.Activation("softmax")
    return None


def _padding_of(e: Entry, hw, kernel, strides, total):
    """'valid' or 'same' from the effective ((top, bottom), (left, right)) padding ``total``."""
    if total == ((0, 0), (0, 0)):
        return "valid"
    _, tf = same_pads(hw, kernel, strides, "same")
    if tuple(total) == tuple(tf):
        return "same"
    raise ValueError(
        f"{e.where}: padding (top, bottom, left, right) = {total[0] + total[1]} is neither 0 ('valid') nor "
        f"TensorFlow's 'same' for an input of {hw[0]}x{hw[1]} with kernel {kernel} and stride {strides}, which "
        f"is {tf[0] + tf[1]}; supported: padding=0, padding='same' at stride 1, or padding that equals "
        "TensorFlow's 'same' (asymmetric: an 'i_pad' ZeroPad2d before the layer, as build makes)"
    )


def _pad_module_padding(e: Entry, value: float):
    """((top, bottom), (left, right)) of the entry's 'i_pad' module (zeros if none)."""
    if e.pad is None:
        return (0, 0), (0, 0)
    pad = e.pad
    if not isinstance(pad, (nn.ZeroPad2d, nn.ConstantPad2d)) or len(pad.padding) != 4:
        raise _unsupported(e, f"its padding child is a {type(pad).__name__}, expected a 2-D constant padding")
    if pad.value != value:
        raise _unsupported(e, f"its padding child pads with {pad.value}, expected {value}")
    left, right, top, bottom = (int(p) for p in pad.padding)
    if min(left, right, top, bottom) < 0:
        raise _unsupported(e, f"negative padding {pad.padding} (cropping) is not supported")
    return (top, bottom), (left, right)


# --------------------------------------------------------------------------- one reader per kind
# Each reader takes the entry and the canonical shape it receives and returns
# (spec layer, output shape).


def _conv2d(e: Entry, shape):
    mod = e.module
    if type(mod) is not nn.Conv2d:
        raise _unsupported(e, f"{type(mod).__name__} is a Conv2d subclass")
    problems = []
    if _pair(mod.dilation) != (1, 1):
        problems.append(f"dilation={mod.dilation}")
    if mod.groups != 1:
        problems.append(f"groups={mod.groups}")
    if mod.bias is None:
        problems.append("bias=False")
    if mod.padding_mode != "zeros":
        problems.append(f"padding_mode={mod.padding_mode!r}")
    if problems:
        raise _unsupported(e, f"{', '.join(problems)} is not supported (the spec's Conv2D has dilation 1, "
                              "groups 1, a bias and zero padding)")
    c, h, w = shape
    if mod.in_channels != c:
        raise ValueError(f"{e.where}: in_channels={mod.in_channels} but the inferred input is {shape}")
    kernel, strides = _pair(mod.kernel_size), _pair(mod.stride)
    if isinstance(mod.padding, str):
        if mod.padding == "valid":
            own = ((0, 0), (0, 0))
        else:  # torch's "same" (stride 1): total k - 1, the odd cell at the end, as TensorFlow
            own = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
    else:
        ph, pw = _pair(mod.padding)
        own = ((ph, ph), (pw, pw))
    total = _add(own, _pad_module_padding(e, 0.0))
    padding = _padding_of(e, (h, w), kernel, strides, total)
    (ho, wo), _ = same_pads((h, w), kernel, strides, padding)
    if ho <= 0 or wo <= 0:
        raise ValueError(f"{e.where}: kernel {kernel} is larger than its input {(h, w)}")
    return S.Conv2D(mod.out_channels, kernel, strides, padding), (mod.out_channels, ho, wo)


def _pool2d(e: Entry, shape):
    """``nn.MaxPool2d`` and ``nn.AvgPool2d`` (not subclasses)."""
    mod = e.module
    kind = type(mod).__name__
    if type(mod) not in (nn.MaxPool2d, nn.AvgPool2d):
        raise _unsupported(e, f"{kind} is a pooling subclass")
    problems = []
    if mod.ceil_mode:
        problems.append("ceil_mode=True")
    if isinstance(mod, nn.MaxPool2d):
        if _pair(mod.dilation) != (1, 1):
            problems.append(f"dilation={mod.dilation}")
        if mod.return_indices:
            problems.append("return_indices=True")
    elif mod.divisor_override is not None:
        problems.append(f"divisor_override={mod.divisor_override}")
    if problems:
        raise _unsupported(e, f"{', '.join(problems)} is not supported")
    c, h, w = shape
    kernel = _pair(mod.kernel_size)
    strides = _pair(mod.stride) if mod.stride not in (None, ()) else kernel
    ph, pw = _pair(mod.padding)
    own = ((ph, ph), (pw, pw))
    if isinstance(mod, nn.MaxPool2d):
        total = _add(own, _pad_module_padding(e, float("-inf")))
    else:
        total = own
        if (ph or pw) and mod.count_include_pad:
            raise _unsupported(e, "count_include_pad=True with padding counts padded zeros in the mean; "
                                  "Keras excludes them: use count_include_pad=False")
    padding = _padding_of(e, (h, w), kernel, strides, total)
    (ho, wo), _ = same_pads((h, w), kernel, strides, padding)
    if ho <= 0 or wo <= 0:
        raise ValueError(f"{e.where}: pool window {kernel} is larger than its input {(h, w)}")
    cls = S.MaxPool2D if isinstance(mod, nn.MaxPool2d) else S.AvgPool2D
    return cls(kernel, strides, padding), (c, ho, wo)


def _avgpool2d_same(e: Entry, shape):
    mod = e.module
    c, h, w = shape
    left, right, top, bottom = mod.padding
    padding = _padding_of(e, (h, w), mod.kernel_size, mod.stride, ((top, bottom), (left, right)))
    (ho, wo), _ = same_pads((h, w), mod.kernel_size, mod.stride, padding)
    return S.AvgPool2D(mod.kernel_size, mod.stride, padding), (c, ho, wo)


def _flatten(e: Entry, shape):
    mod = e.module
    if (mod.start_dim, mod.end_dim) != (1, -1):
        raise _unsupported(e, f"Flatten(start_dim={mod.start_dim}, end_dim={mod.end_dim}); the spec's "
                              "Flatten keeps the batch axis and flattens the rest (start_dim=1, end_dim=-1)")
    return S.Flatten(), (math.prod(shape),)


def _linear(e: Entry, shape):
    mod = e.module
    if type(mod) is not nn.Linear:
        raise _unsupported(e, f"{type(mod).__name__} is a Linear subclass")
    if mod.bias is None:
        raise _unsupported(e, "bias=False is not supported (the spec's Dense has a bias)")
    if len(shape) != 1:
        raise ValueError(f"{e.where}: expects a flat input (features,), got {shape}; add an nn.Flatten "
                         "before it")
    if mod.in_features != shape[0]:
        raise ValueError(f"{e.where}: in_features={mod.in_features} but the inferred input has "
                         f"{shape[0]} features (shape {shape})")
    return S.Dense(mod.out_features), (mod.out_features,)


def _dropout(e: Entry, shape):
    try:
        return S.Dropout(float(e.module.p)), shape
    except ValueError as exc:
        raise ValueError(f"{e.where}: {exc}") from None


def _activation(e: Entry, shape):
    layer = _activation_of(e.module, e, len(shape) == 1)
    if layer is None:
        raise _unsupported(e, f"{type(e.module).__name__} is not supported")
    return layer, shape


_IMAGE_MODULES = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, AvgPool2dSame)


def _reader(mod: nn.Module):
    """The reader for ``mod``'s kind (isinstance order matters: subclasses are rejected by
    the readers themselves with a clear message)."""
    if isinstance(mod, nn.Conv2d):
        return _conv2d
    if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
        return _pool2d
    if isinstance(mod, AvgPool2dSame):
        return _avgpool2d_same
    if isinstance(mod, nn.Flatten):
        return _flatten
    if isinstance(mod, nn.Linear):
        return _linear
    if isinstance(mod, nn.Dropout) and type(mod) is nn.Dropout:
        return _dropout
    return _activation


def _with_fused_activation(e: Entry, layer, shape):
    """``layer`` with the entry's fused ``"i_<act>"`` child folded in (if any)."""
    if e.act is None:
        return layer
    if not isinstance(layer, (S.Conv2D, S.Dense)):
        raise ValueError(f"{e.where}: fused activation child {e.act_name!r} may follow a Conv2d or Linear only")
    act = _activation_of(e.act, e, len(shape) == 1)
    if act is None or e.act_name != f"{e.index}_{act.name}":
        raise ValueError(f"{e.where}: child {e.act_name!r} is a {type(e.act).__name__}; a fused activation "
                         "child is named after its activation (e.g. '0_relu' holding an nn.ReLU)")
    return dataclasses.replace(layer, activation=act)


# --------------------------------------------------------------------------- spec_of
def spec_of(model: nn.Sequential, input_shape) -> tuple:
    """The spec layers of a torch ``nn.Sequential``.

    Each entry (see :func:`torch_models.builder.entries`) becomes one spec layer: in a
    hand-written ``nn.Sequential(nn.Conv2d(1, 10, 3), nn.ReLU(), ...)`` every child, so the
    ReLU is a standalone ``Activation`` and the indices match the model's ``state_dict``;
    in a model from :func:`torch_models.build` the fused ``"i_<act>"`` children fold back
    into their ``Conv2D``/``Dense`` and ``"i_pad"`` children into the layer's padding.

    Padding is inferred for the shape each layer receives: 0 is ``"valid"``; padding
    equal to TensorFlow's "same" for that input size (on the layer, through an
    ``"i_pad"`` child, or torch's ``padding="same"``) is ``"same"``. A layer whose "same"
    padding is zero comes back as ``"valid"`` (the two are the same computation).

    Raises
    ------
    ValueError
        An unsupported module or option (dilation, groups, ``bias=False``,
        ``padding_mode`` other than zeros, ``ceil_mode``, padding that is not
        TensorFlow's, ``count_include_pad=True`` with padding, BatchNorm, ...), or a
        ``Conv2d``/``Linear`` whose input size does not match the inferred shape. The
        message names the layer and its child.
    """
    shape = check_input_shape(input_shape)
    layers = []
    for e in entries(model):
        if isinstance(e.module, _IMAGE_MODULES) and len(shape) != 3:
            raise ValueError(f"{e.where}: expects an input of shape (channels, height, width), got {shape}")
        if e.pad is not None and not isinstance(e.module, (nn.Conv2d, nn.MaxPool2d)):
            raise _unsupported(e, "a padding child is supported before Conv2d and MaxPool2d only")
        layer, shape = _reader(e.module)(e, shape)
        layers.append(_with_fused_activation(e, layer, shape))
    return tuple(layers)
