"""Spec -> ``torch.nn.Sequential`` and back.

:func:`build` turns a tuple of :mod:`scratch.spec` layers into the model a PyTorch user
would write; :func:`spec_of` reads such a model (made by :func:`build` or written by
hand) back into spec layers.

Conventions mapped (DESIGN.md sections 2-4)
-------------------------------------------
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

import dataclasses
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
from scratch.layers import ShapeError, conv_output_size
from scratch.data import check_input_shape

__all__ = ["AvgPool2dSame", "Entry", "as_torch_dtype", "build", "entries", "forward_layers", "spec_of"]

_DTYPES = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64)}


# --------------------------------------------------------------------------- helpers
def as_torch_dtype(dtype) -> torch.dtype:
    """``torch.float32``/``torch.float64`` from a torch dtype, a NumPy dtype or a name."""
    if isinstance(dtype, torch.dtype):
        if dtype in _DTYPES:
            return dtype
    else:
        try:
            npd = np.dtype(dtype)
        except TypeError:
            npd = None
        for t, n in _DTYPES.items():
            if npd == n:
                return t
    raise TypeError(f"dtype: {dtype!r} is not supported; allowed: float32, float64")


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The NumPy dtype of a supported torch dtype."""
    return _DTYPES[as_torch_dtype(dtype)]


def _same_pads(hw, kernel, strides, padding):
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
            (ho, wo), ((pt, pb), (pl, pr)) = _same_pads((h, w), size, layer.strides, layer.padding)
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


# --------------------------------------------------------------------------- spec_of
SUPPORTED = ("Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh",
             "Softmax", "Identity", "Dropout", "and the ZeroPad2d / ConstantPad2d(-inf) ('i_pad') and "
             "AvgPool2dSame modules that build adds")


def _unsupported(e: Entry, what: str):
    return ValueError(f"{e.where}: {what}; supported modules: {', '.join(SUPPORTED)}")


def _pair(v):
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(u) for u in v)


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
    _, tf = _same_pads(hw, kernel, strides, "same")
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


def _add(a, b):
    return tuple((x[0] + y[0], x[1] + y[1]) for x, y in zip(a, b))


def spec_of(model: nn.Sequential, input_shape) -> tuple:
    """The spec layers of a torch ``nn.Sequential``.

    Each entry (see :func:`entries`) becomes one spec layer: in a hand-written
    ``nn.Sequential(nn.Conv2d(1, 10, 3), nn.ReLU(), ...)`` every child, so the ReLU is a
    standalone ``Activation`` and the indices match the model's ``state_dict``; in a
    model from :func:`build` the fused ``"i_<act>"`` children fold back into their
    ``Conv2D``/``Dense`` and ``"i_pad"`` children into the layer's padding.

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
        mod = e.module
        layer = None
        needs_image = isinstance(mod, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, AvgPool2dSame))
        if needs_image and len(shape) != 3:
            raise ValueError(f"{e.where}: expects an input of shape (channels, height, width), got {shape}")
        if e.pad is not None and not isinstance(mod, (nn.Conv2d, nn.MaxPool2d)):
            raise _unsupported(e, "a padding child is supported before Conv2d and MaxPool2d only")
        if isinstance(mod, nn.Conv2d):
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
            (ho, wo), _ = _same_pads((h, w), kernel, strides, padding)
            if ho <= 0 or wo <= 0:
                raise ValueError(f"{e.where}: kernel {kernel} is larger than its input {(h, w)}")
            layer = S.Conv2D(mod.out_channels, kernel, strides, padding)
            shape = (mod.out_channels, ho, wo)
        elif isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
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
            (ho, wo), _ = _same_pads((h, w), kernel, strides, padding)
            if ho <= 0 or wo <= 0:
                raise ValueError(f"{e.where}: pool window {kernel} is larger than its input {(h, w)}")
            cls = S.MaxPool2D if isinstance(mod, nn.MaxPool2d) else S.AvgPool2D
            layer = cls(kernel, strides, padding)
            shape = (c, ho, wo)
        elif isinstance(mod, AvgPool2dSame):
            c, h, w = shape
            left, right, top, bottom = mod.padding
            padding = _padding_of(e, (h, w), mod.kernel_size, mod.stride, ((top, bottom), (left, right)))
            (ho, wo), _ = _same_pads((h, w), mod.kernel_size, mod.stride, padding)
            layer = S.AvgPool2D(mod.kernel_size, mod.stride, padding)
            shape = (c, ho, wo)
        elif isinstance(mod, nn.Flatten):
            if (mod.start_dim, mod.end_dim) != (1, -1):
                raise _unsupported(e, f"Flatten(start_dim={mod.start_dim}, end_dim={mod.end_dim}); the spec's "
                                      "Flatten keeps the batch axis and flattens the rest (start_dim=1, end_dim=-1)")
            layer = S.Flatten()
            shape = (math.prod(shape),)
        elif isinstance(mod, nn.Linear):
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
            layer = S.Dense(mod.out_features)
            shape = (mod.out_features,)
        elif isinstance(mod, nn.Dropout) and type(mod) is nn.Dropout:
            try:
                layer = S.Dropout(float(mod.p))
            except ValueError as exc:
                raise ValueError(f"{e.where}: {exc}") from None
        else:
            layer = _activation_of(mod, e, len(shape) == 1)
            if layer is None:
                raise _unsupported(e, f"{type(mod).__name__} is not supported")
        if e.act is not None:
            if not isinstance(layer, (S.Conv2D, S.Dense)):
                raise ValueError(f"{e.where}: fused activation child {e.act_name!r} may follow a Conv2d or Linear only")
            act = _activation_of(e.act, e, len(shape) == 1)
            if act is None or e.act_name != f"{e.index}_{act.name}":
                raise ValueError(f"{e.where}: child {e.act_name!r} is a {type(e.act).__name__}; a fused activation "
                                 "child is named after its activation (e.g. '0_relu' holding an nn.ReLU)")
            layer = dataclasses.replace(layer, activation=act)
        layers.append(layer)
    return tuple(layers)
