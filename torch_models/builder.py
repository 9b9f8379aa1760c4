"""Spec -> ``torch.nn.Sequential``, and the grouping of a model's children into spec entries.

:func:`build` turns a tuple of :mod:`scratch.spec` layers into the model a PyTorch user
would write; :func:`entries` groups the children of such a model (made by :func:`build`
or written by hand) into spec entries, which :func:`torch_models.spec_of.spec_of` reads
back into spec layers.

Conventions mapped (see docs/DESIGN.md, 'Canonical layout' and 'Padding and pooling')
-------------------------------------------------------------------------------------
* **Layout.** NCHW throughout, as in scratch; ``input_shape`` is one sample's canonical
  ``(C, H, W)`` (or ``(F,)``). ``nn.Flatten`` flattens C, H, W in row-major order, the
  same order as scratch, so no permutation is ever needed between torch and scratch.
* **Names.** ``build`` returns ``nn.Sequential(OrderedDict)`` whose children are named
  after the spec index, so that torch's ``state_dict`` keys line up with scratch's
  (``"0.weight"`` <-> ``"0.kernel"``):

  - ``"i"``: the main module of spec entry ``i`` (``Conv2d``, ``MaxPool2d``, ``Linear``,
    a standalone activation, ...);
  - ``"i_pad"``: an explicit padding module that runs right before ``"i"`` (only for
    asymmetric TensorFlow "same" padding, see below); it has no parameters;
  - ``"i_<act>"``, e.g. ``"0_relu"``, ``"4_softmax"``: the activation fused into a
    ``Conv2D``/``Dense`` entry (its ``activation=`` argument), right after ``"i"``.

  ``model[i]`` indexes positions, which differ from spec indices once a fused or pad
  child exists: reach entry ``i`` with ``model.get_submodule("i")``.

  A hand-written ``nn.Sequential(nn.Conv2d(...), nn.ReLU(), ...)`` has children
  ``"0"``, ``"1"``, ...: there every child is one spec entry (the ReLU becomes a
  standalone ``Activation``), so its indices line up with its own ``state_dict`` too.
* **Padding.** ``"valid"`` is ``padding=0``. ``"same"`` follows TensorFlow for every
  stride (:func:`scratch.layers.conv_output_size`): total padding
  ``max((ceil(n/s) - 1) * s + k - n, 0)``, the odd cell at the bottom/right.

  - symmetric (equal before and after on both axes): the torch layer's own
    ``padding=(ph, pw)`` (``Conv2d``; ``MaxPool2d``, whose implicit padding is -inf;
    ``AvgPool2d(count_include_pad=False)``, which divides by the number of real cells,
    as Keras does). TensorFlow's "before" padding is at most ``(k - 1) // 2``, within
    torch's limit of half the kernel for pooling;
  - asymmetric: ``Conv2d``: child ``"i_pad"`` = ``nn.ZeroPad2d((left, right, top,
    bottom))`` then ``Conv2d(padding=0)``; ``MaxPool2d``: ``"i_pad"`` =
    ``nn.ConstantPad2d(..., -inf)`` then ``MaxPool2d(padding=0)``; average pooling:
    one :class:`AvgPool2dSame` module (zero padding, then division by the number of
    real cells per window, so padded cells are excluded from the mean).
* **Activations.** ``identity`` -> ``nn.Identity``, ``relu`` -> ``nn.ReLU``,
  ``leaky_relu`` -> ``nn.LeakyReLU(negative_slope=...)`` (always passed: torch's default
  is 0.01, the spec's and Keras's 0.3), ``sigmoid``, ``tanh``, ``softmax`` ->
  ``nn.Softmax(dim=1)`` (scratch's softmax is over axis 1). Dropout -> ``nn.Dropout(rate)``.
* **dtype.** The whole model is created in ``dtype`` (``torch.float64`` by default; the
  strict parity checks run in float64, users in float32).
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scratch import spec as S
from scratch.checks import check_dtype, check_input_shape
from scratch.layers import ShapeError, conv_output_size

__all__ = ["AvgPool2dSame", "Entry", "as_torch_dtype", "build", "entries", "forward_layers", "numpy_dtype", "same_pads"]

_DTYPES = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}


# --------------------------------------------------------------------------- helpers
def as_torch_dtype(dtype) -> torch.dtype:
    """``torch.float32``/``torch.float64`` from a torch dtype, a NumPy dtype or a name."""
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES:
        return dtype
    npd = check_dtype(dtype)  # the shared message for everything else
    return next(t for t, n in _DTYPES.items() if n == npd)


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype of a supported torch dtype."""
    return _DTYPES[as_torch_dtype(dtype)]


def same_pads(hw, kernel, strides, padding):
    """Output (ho, wo) and ((top, bottom), (left, right)) from scratch's padding rule."""
    ho, ph = conv_output_size(hw[0], kernel[0], strides[0], padding)
    wo, pw = conv_output_size(hw[1], kernel[1], strides[1], padding)
    return (ho, wo), (ph, pw)


def _activation_module(act: S.Activation) -> nn.Module:
    name = act.name
    if name == "identity":
        return nn.Identity()
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope=act.negative_slope)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "tanh":
        return nn.Tanh()
    return nn.Softmax(dim=1)


# --------------------------------------------------------------------------- module
class AvgPool2dSame(nn.Module):
    """Average pooling with explicit (possibly asymmetric) zero padding that excludes the
    padded cells from each mean, as Keras's ``AveragePooling2D(padding="same")`` does.

    ``torch.nn.AvgPool2d(count_include_pad=False)`` does the same only for symmetric
    padding; TensorFlow's "same" rule puts the odd padded row/column at the bottom/right.
    Forward: ``sum over the window of the zero-padded input / number of real cells in the
    window`` (the counts come from pooling a padded ones-mask, cached per input size).

    Parameters
    ----------
    kernel_size, stride : (int, int)
    padding : (left, right, top, bottom)
        In the order of :func:`torch.nn.functional.pad` and ``nn.ZeroPad2d``.
    """

    def __init__(self, kernel_size, stride, padding):
        super().__init__()
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.stride = tuple(int(s) for s in stride)
        self.padding = tuple(int(p) for p in padding)
        if len(self.kernel_size) != 2 or len(self.stride) != 2 or len(self.padding) != 4:
            raise ValueError("AvgPool2dSame: expected kernel_size and stride pairs and padding (left, right, top, bottom)")
        self._counts_key = None
        self._counts = None

    def _window_sums(self, x):
        # divisor_override=1: the plain sum of each window (dividing by 1 is exact).
        return F.avg_pool2d(F.pad(x, self.padding), self.kernel_size, self.stride, divisor_override=1)

    def counts(self, x: torch.Tensor) -> torch.Tensor:
        """Real (unpadded) cells per output window, (1, 1, Ho, Wo), in ``x``'s dtype/device."""
        key = (tuple(x.shape[-2:]), x.dtype, x.device)
        if key != self._counts_key:
            with torch.no_grad():
                self._counts = self._window_sums(torch.ones((1, 1) + key[0], dtype=x.dtype, device=x.device))
            self._counts_key = key
        return self._counts

    def forward(self, x):
        return self._window_sums(x) / self.counts(x)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


# --------------------------------------------------------------------------- build
def _build(layers, input_shape, dtype):
    """(model, output_shape)."""
    layers = S.validate(layers)
    tdtype = as_torch_dtype(dtype)
    shape = check_input_shape(input_shape)
    mods: "OrderedDict[str, nn.Module]" = OrderedDict()
    kw = {"dtype": tdtype}
    for i, layer in enumerate(layers):
        kind = type(layer).__name__
        if isinstance(layer, (S.Conv2D, S.MaxPool2D, S.AvgPool2D)):
            if len(shape) != 3:
                raise ShapeError(f"layer {i} ({kind}): expects an input of shape (channels, height, width), "
                                 f"got {shape}; a {kind} cannot follow a Flatten or Dense")
            c, h, w = shape
            size = layer.kernel_size if isinstance(layer, S.Conv2D) else layer.pool_size
            (ho, wo), ((pt, pb), (pl, pr)) = same_pads((h, w), size, layer.strides, layer.padding)
            if ho <= 0 or wo <= 0:
                raise ShapeError(f"layer {i} ({kind}): window {size} is larger than its input {(h, w)} "
                                 f"(input shape {shape}, padding {layer.padding!r})")
            symmetric = pt == pb and pl == pr
            if isinstance(layer, S.Conv2D):
                if not symmetric:
                    mods[f"{i}_pad"] = nn.ZeroPad2d((pl, pr, pt, pb))
                pad = (pt, pl) if symmetric else (0, 0)
                mods[str(i)] = nn.Conv2d(c, layer.filters, size, layer.strides, padding=pad, **kw)
                shape = (layer.filters, ho, wo)
            elif isinstance(layer, S.MaxPool2D):
                if not symmetric:
                    mods[f"{i}_pad"] = nn.ConstantPad2d((pl, pr, pt, pb), float("-inf"))
                mods[str(i)] = nn.MaxPool2d(size, layer.strides, padding=(pt, pl) if symmetric else 0)
                shape = (c, ho, wo)
            else:
                if symmetric:
                    mods[str(i)] = nn.AvgPool2d(size, layer.strides, padding=(pt, pl), count_include_pad=False)
                else:
                    mods[str(i)] = AvgPool2dSame(size, layer.strides, (pl, pr, pt, pb))
                shape = (c, ho, wo)
        elif isinstance(layer, S.Flatten):
            mods[str(i)] = nn.Flatten()
            shape = (math.prod(shape),)
        elif isinstance(layer, S.Dense):
            if len(shape) != 1:
                raise ShapeError(f"layer {i} (Dense): expects a flat input (features,), got {shape}; "
                                 "add a Flatten before it")
            mods[str(i)] = nn.Linear(shape[0], layer.units, **kw)
            shape = (layer.units,)
        elif isinstance(layer, S.Activation):
            mods[str(i)] = _activation_module(layer)
        else:  # Dropout
            mods[str(i)] = nn.Dropout(layer.rate)
        act = getattr(layer, "activation", None)
        if act is not None:
            mods[f"{i}_{act.name}"] = _activation_module(act)
    return nn.Sequential(mods), shape


def build(layers, input_shape, *, dtype=torch.float64) -> nn.Sequential:
    """Build the torch model of a spec.

    Parameters
    ----------
    layers : sequence of :mod:`scratch.spec` layers
    input_shape : tuple
        One sample's canonical shape, ``(C, H, W)`` or ``(F,)``; the model takes
        ``(N,) + input_shape`` (NCHW).
    dtype : torch.float32 or torch.float64 (or the NumPy dtype / name)

    Returns
    -------
    torch.nn.Sequential
        Children named ``"i"``, ``"i_pad"``, ``"i_<activation>"`` (module docstring); its
        parameters are torch's own initialisation (load scratch's with
        :func:`torch_models.from_scratch`).

    Raises
    ------
    scratch.layers.ShapeError
        A layer cannot take the shape it gets; the message names the layer.
    """
    return _build(layers, input_shape, dtype)[0]


# --------------------------------------------------------------------------- grouping
_PAD_RE = re.compile(r"^(\d+)_pad$")
_ACT_RE = re.compile(r"^(\d+)_(" + "|".join(S.ACTIVATIONS) + r")$")


@dataclass
class Entry:
    """The children of one spec entry: optional ``pad`` module, main ``module``, optional
    fused activation ``act``. ``name`` is the main module's child name."""

    index: int
    name: str
    module: nn.Module
    pad: Optional[nn.Module] = None
    act: Optional[nn.Module] = None
    act_name: Optional[str] = None

    @property
    def where(self) -> str:
        return f"layer {self.index} (child {self.name!r}: {type(self.module).__name__})"


def entries(model: nn.Module) -> List[Entry]:
    """Group the children of an ``nn.Sequential`` into spec entries.

    ``"i_pad"`` joins the next child, ``"i_<activation>"`` joins the previous one (both
    must belong to entry ``i``); every other child is the main module of a new entry,
    whose index is its position among the entries. Numeric child names must equal that
    index, so that ``state_dict`` keys line up with scratch's.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model: expected a torch.nn.Sequential (from torch_models.build or written by hand), "
                        f"got {type(model).__name__}")
    out: List[Entry] = []
    pending = None
    for name, mod in model.named_children():
        m = _PAD_RE.match(name)
        if m:
            if pending is not None:
                raise ValueError(f"child {name!r} follows the padding child {pending[1]!r}; "
                                 "one padding module per layer, right before it")
            pending = (int(m.group(1)), name, mod)
            continue
        m = _ACT_RE.match(name)
        if m:
            k = int(m.group(1))
            if pending is not None or not out or out[-1].index != k or out[-1].act is not None:
                raise ValueError(f"child {name!r}: a fused activation must directly follow the main module "
                                 f"of layer {k} (child {str(k)!r})")
            out[-1].act, out[-1].act_name = mod, name
            continue
        index = len(out)
        if name.isdigit() and int(name) != index:
            raise ValueError(f"child {name!r} is spec entry {index}: numbered children must be numbered "
                             "0, 1, ... in order so that state_dict keys line up with the spec")
        if pending is not None and pending[0] != index:
            raise ValueError(f"padding child {pending[1]!r} is followed by child {name!r} (layer {index})")
        out.append(Entry(index, name, mod, pad=pending[2] if pending else None))
        pending = None
    if pending is not None:
        raise ValueError(f"padding child {pending[1]!r} is the last child; it must come right before its layer")
    if not out:
        raise ValueError("model: the nn.Sequential is empty")
    return out


def forward_layers(model: nn.Sequential, x: torch.Tensor) -> list:
    """The output of every spec entry (after its fused activation), in order; the torch
    counterpart of ``scratch.Sequential.forward_layers`` for layer-by-layer comparisons."""
    outs = []
    for e in entries(model):
        for m in (e.pad, e.module, e.act):
            if m is not None:
                x = m(x)
        outs.append(x)
    return outs
