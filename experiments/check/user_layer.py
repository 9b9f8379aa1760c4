"""One user layer bound to an input shape: its declared layouts checked, its calls made.

:class:`UserLayer` is what the user declares (the arguments of :func:`experiments.check.layer`);
:meth:`UserLayer.bind` checks everything that can be checked before any call (layer kind,
input shape, layout strings, parameter names) and returns a :class:`Bound` whose methods
call the user's code on canonical float64 batches and return canonical float64 arrays:

* :meth:`Bound.read_params` before every forward (copies; zeros for a spec parameter the
  user's layer lacks);
* :meth:`Bound.forward` / :meth:`Bound.backward` on one call's batch (one sample when the
  layout has no ``n``);
* :meth:`Bound.read_grads` after the backward (through the getters, or
  ``(before - after) / lr`` with ``grads_from_update``).

Bad output of the user's code raises :class:`Problem` (a quantity, a diagnosis id, one
line); a bad declaration raises :class:`CheckUsageError`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

import scratch
from experiments.errors import UsageError
from scratch import spec as S

from . import layouts, references
from .report import DTYPE, SHAPE
from .user_code import Captured, UserCodeError, call, read


class CheckUsageError(UsageError):
    """A check declared wrongly (layout, parameter, shape...): one line naming the thing
    (the suite's usage error: ``xfw check`` prints it as one line and exits 2)."""


class Problem(Exception):
    """The user's code returned something that cannot be compared for ``quantity``."""

    def __init__(self, quantity: str, kind: str, text: str):
        super().__init__(text)
        self.quantity, self.kind, self.text = quantity, kind, text


PARAM_QUANTITY = {"kernel": "kernel gradient", "bias": "bias gradient"}
#: The layout a parameter gets when the user leaves it out (the canonical one).
DEFAULT_PARAM_LAYOUT = {"conv-kernel": "out in kh kw", "dense-kernel": "in out", "bias": "out"}
_KERNEL_KIND = {S.Conv2D: "conv-kernel", S.Dense: "dense-kernel"}


def describe(layer) -> str:
    """A short name of a spec layer: ``Conv2D(2 filters, 3x3, stride 1, valid, relu)``."""
    act = getattr(layer, "activation", None)
    tail = f", {act.name}" if act is not None else ""
    if isinstance(layer, S.Conv2D):
        (kh, kw), (sh, sw) = layer.kernel_size, layer.strides
        stride = sh if sh == sw else f"{sh}x{sw}"
        return f"Conv2D({layer.filters} filters, {kh}x{kw}, stride {stride}, {layer.padding}{tail})"
    if isinstance(layer, (S.MaxPool2D, S.AvgPool2D)):
        (ph, pw), (sh, sw) = layer.pool_size, layer.strides
        return f"{type(layer).__name__}({ph}x{pw}, stride {sh if sh == sw else f'{sh}x{sw}'}, {layer.padding})"
    if isinstance(layer, S.Dense):
        return f"Dense({layer.units} units{tail})"
    if isinstance(layer, S.Activation):
        return f"Activation({layer.name})"
    if isinstance(layer, S.Dropout):
        return f"Dropout({layer.rate:g}, inference)"
    return type(layer).__name__


def _shape_of(what: str, shape) -> tuple:
    try:
        shape = tuple(shape)
    except TypeError:
        raise CheckUsageError(f"{what}: {shape!r} is not a shape; give (channels, height, width) or (features,)") \
            from None
    if len(shape) not in (1, 3) or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise CheckUsageError(f"{what}: {shape!r} is not a shape; give (channels, height, width) or (features,) "
                              "of positive ints")
    return shape


@dataclass
class UserLayer:
    """The user's layer as the checks see it. ``params``: name -> (getter, layout);
    ``grads``: name -> getter (same layout as the parameter); ``grads_from_update``: the
    learning rate of an in-place update, ``grad = (before - after) / lr``;
    ``pre_activation_grad``: ``backward`` takes the gradient with respect to the
    pre-activation (before the layer's own activation)."""

    spec: object
    forward: Callable
    backward: Optional[Callable] = None
    input_layout: Optional[str] = None
    output_layout: Optional[str] = None
    params: Optional[dict] = None
    grads: Optional[dict] = None
    grads_from_update: Optional[float] = None
    pre_activation_grad: bool = False

    def bind(self, input_shape, *, where: str = "", input_image=None) -> "Bound":
        """Check the declaration on ``input_shape``; ``input_image``: the (C, H, W) the flat
        input was flattened from (after a Flatten), so that ``n (h w c)`` is understood."""
        return Bound(self, input_shape, where, input_image)


class Bound:
    """A :class:`UserLayer` on one canonical input shape (see the module docstring)."""

    def __init__(self, user: UserLayer, input_shape, where: str = "", input_image=None):
        self.user, self.where = user, where
        layer = user.spec
        if not isinstance(layer, S.LAYER_KINDS):
            names = ", ".join(k.__name__ for k in S.LAYER_KINDS)
            raise CheckUsageError(f"{where}layer: {layer!r} is not a spec layer; allowed: {names} "
                                  "(from scratch.spec)")
        self.spec, self.input_image = layer, input_image
        self.input_shape = _shape_of(f"{where}input_shape", input_shape)
        try:
            self.output_shape = tuple(scratch.build((layer,), self.input_shape, dtype=np.float64).output_shape)
        except ValueError as e:
            raise CheckUsageError(f"{where}{describe(layer)} on input {self.input_shape}: {e}") from None
        if not callable(user.forward):
            raise CheckUsageError(f"{where}forward: {user.forward!r} is not callable; pass forward(x) -> y")
        if user.backward is not None and not callable(user.backward):
            raise CheckUsageError(f"{where}backward: {user.backward!r} is not callable; pass backward(dy) or None")
        # A layout left out follows the declared one in taking a batch or one sample at a time.
        declared = user.input_layout if user.input_layout is not None else user.output_layout
        batched = declared is None or "n" in layouts.parse_axes(declared)
        self.conv_in = self._activation("input_layout", user.input_layout, self.input_shape, image_shape=input_image,
                                        batched=batched)
        self.conv_out = self._activation("output_layout", user.output_layout, self.output_shape,
                                         image_shape=self.input_shape if isinstance(layer, S.Flatten) else None,
                                         batched=batched)
        self.per_sample = self.conv_in.per_sample or self.conv_out.per_sample
        if self.conv_in.per_sample != self.conv_out.per_sample:
            raise CheckUsageError(
                f"{where}input_layout {self.conv_in.layout.text!r} and output_layout {self.conv_out.layout.text!r}: "
                "either both name the batch axis 'n' or neither does (one sample at a time)")
        self.param_shapes = references.spec_params(layer, self.input_shape)
        #: Declarations left out (``"input_layout"``, ``"output_layout"``, ``"params['kernel']"``):
        #: the defaults are used, and a failing check tries to infer them.
        self.left_out = [w for w, v in (("input_layout", user.input_layout), ("output_layout", user.output_layout))
                         if v is None]
        self.params = self._params(user.params or {})
        self.grads = self._grads(user.grads or {}, user.grads_from_update)

    # ------------------------------------------------------------------ declarations
    def _activation(self, what, text, shape, image_shape=None, batched=True):
        if len(shape) == 3:
            kind, sizes, default = "image", dict(zip("chw", shape)), "n c h w"
        else:
            kind, sizes, default = "flat", {"f": shape[0]}, "n f"
        default = default if batched else default[2:]
        try:
            return layouts.Converter(default if text is None else text, kind=kind, sizes=sizes,
                                     what=f"{self.where}{what}", image_shape=image_shape)
        except layouts.LayoutError as e:
            raise CheckUsageError(str(e)) from None

    def _params(self, params) -> dict:
        if not isinstance(params, dict):
            raise CheckUsageError(f"{self.where}params: expected a dict name -> (getter, layout), got "
                                  f"{type(params).__name__}")
        allowed = ", ".join(self.param_shapes) or "none (this layer has no parameters)"
        out = {}
        for name, entry in params.items():
            if name not in self.param_shapes:
                raise CheckUsageError(f"{self.where}params: {describe(self.spec)} has no parameter {name!r}; "
                                      f"allowed: {allowed}")
            if callable(entry):
                entry = (entry, None)
            if not (isinstance(entry, tuple) and len(entry) == 2 and callable(entry[0])):
                raise CheckUsageError(f"{self.where}params[{name!r}]: expected (getter, layout) such as "
                                      f"(lambda: layer.W, '(kh kw) out'), or a getter alone, got {entry!r}")
            shape = self.param_shapes[name]
            if name == "bias":
                kind, sizes = "bias", {"out": shape[0]}
            elif isinstance(self.spec, S.Conv2D):
                kind, sizes = "conv-kernel", dict(zip(("out", "in", "kh", "kw"), shape))
            else:
                kind, sizes = "dense-kernel", dict(zip(("in", "out"), shape))
            text = entry[1]
            if text is None:
                self.left_out.append(f"params[{name!r}]")
                text = DEFAULT_PARAM_LAYOUT[kind]
            try:
                conv = layouts.Converter(text, kind=kind, sizes=sizes, what=f"{self.where}params[{name!r}]",
                                         image_shape=self.input_image if kind == "dense-kernel" else None)
            except layouts.LayoutError as e:
                raise CheckUsageError(str(e)) from None
            out[name] = (entry[0], conv)
        return out

    def _grads(self, grads, lr) -> dict:
        where, user = self.where, self.user
        if not isinstance(grads, dict):
            raise CheckUsageError(f"{where}grads: expected a dict name -> getter, got {type(grads).__name__}")
        if (grads or lr is not None) and user.backward is None:
            raise CheckUsageError(f"{where}grads: parameter gradients need backward=...; without it only the "
                                  "forward pass is checked")
        if grads and lr is not None:
            raise CheckUsageError(f"{where}grads_from_update: give either grads getters or grads_from_update "
                                  "(the learning rate of your in-place update), not both")
        if lr is not None:
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
                raise CheckUsageError(f"{where}grads_from_update: {lr!r} is not a learning rate; expected a "
                                      "finite number > 0")
            if not self.params:
                raise CheckUsageError(f"{where}grads_from_update: needs params getters to read the weights "
                                      "before and after the update")
            return {name: None for name in self.params}
        for name, getter in grads.items():
            if name not in self.params:
                raise CheckUsageError(f"{where}grads[{name!r}]: no getter for {name!r} in params; a parameter left "
                                      f"out of params does not exist in your layer (declared: "
                                      f"{', '.join(self.params) or 'none'})")
            if not callable(getter):
                raise CheckUsageError(f"{where}grads[{name!r}]: {getter!r} is not callable; pass a getter such "
                                      "as lambda: layer.dW")
        return dict(grads)

    # ------------------------------------------------------------------ calls
    def read_params(self, captured: Captured) -> dict:
        """Canonical copies of every spec parameter (zeros for those the layer lacks)."""
        out = {name: np.zeros(shape) for name, shape in self.param_shapes.items()}
        for name, (getter, conv) in self.params.items():
            what = f"{self.where}params[{name!r}] getter"
            try:
                raw = read(getter, what=what, captured=captured)
            except TypeError as e:
                raise CheckUsageError(f"{e}; expected an array of layout {conv.describe()}") from None
            if not conv.fits(raw):
                if f"params[{name!r}]" in self.left_out:
                    raise Problem("output", SHAPE, f"{what} returned shape {raw.shape}; with no layout given it "
                                  f"must be {conv.describe()} (pass params={{{name!r}: (getter, layout)}})")
                raise CheckUsageError(f"{what} returned shape {raw.shape}, which does not fit "
                                      f"{describe(self.spec)} on input {self.input_shape}: layout {conv.describe()}")
            if not np.issubdtype(raw.dtype, np.floating):
                raise CheckUsageError(f"{what} returned dtype {raw.dtype}; expected floating point (float64)")
            out[name] = conv.to_canonical(raw).astype(np.float64)
        return out

    def _user_array(self, raw, quantity, conv, n, who):
        if not isinstance(raw, np.ndarray):
            raise Problem(quantity, DTYPE, f"{who} returned {type(raw).__name__}, not a NumPy array")
        if not conv.fits(raw, n):
            raise Problem(quantity, SHAPE, f"{who} returned shape {tuple(raw.shape)}; layout "
                                           f"{conv.describe(n)} for this call")
        if raw.dtype != np.float64:
            raise Problem(quantity, DTYPE, f"{who} returned dtype {raw.dtype}; xfw passes float64 and expects "
                                           "float64 back (look for float32 arrays, integer arrays or a dtype= "
                                           "argument in your code)")
        out = conv.to_canonical(np.array(raw, copy=True))
        return out[None] if conv.per_sample else out

    def _user_input(self, a, conv):
        return conv.from_canonical(a[0] if conv.per_sample else a)

    def forward(self, x, captured: Captured) -> np.ndarray:
        """The canonical output of ``forward`` on canonical ``x`` (one sample if per-sample)."""
        raw = call(self.user.forward, self._user_input(x, self.conv_in), what=f"{self.where}forward",
                   captured=captured)
        return self._user_array(raw, "output", self.conv_out, x.shape[0], f"{self.where}forward")

    def backward(self, dy, captured: Captured) -> Optional[np.ndarray]:
        """The canonical input gradient ``backward`` returns, or None when it returns None."""
        raw = call(self.user.backward, self._user_input(dy, self.conv_out), what=f"{self.where}backward",
                   captured=captured)
        if raw is None:
            return None
        return self._user_array(raw, "input gradient", self.conv_in, dy.shape[0], f"{self.where}backward")

    def read_grads(self, before: dict, captured: Captured) -> dict:
        """Canonical parameter gradients of the last backward: name -> array or :class:`Problem`."""
        out = {}
        lr = self.user.grads_from_update
        for name, getter in self.grads.items():
            quantity = PARAM_QUANTITY[name]
            conv = self.params[name][1]
            try:
                if lr is not None:
                    after = self.read_params(captured)[name]
                    out[name] = (before[name] - after) / lr
                    continue
                what = f"{self.where}grads[{name!r}] getter"
                try:
                    raw = read(getter, what=what, captured=captured)
                except TypeError as e:
                    raise Problem(quantity, DTYPE, str(e)) from None
                out[name] = self._user_array(raw, quantity, conv, None, what)
            except Problem as p:
                out[name] = p
        return out


__all__ = ["Bound", "CheckUsageError", "Problem", "UserLayer", "UserCodeError", "describe"]
