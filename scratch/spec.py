"""Framework-neutral architecture spec.

A model is a tuple of these frozen dataclasses; entry ``i`` is layer ``i`` in the
scratch engine, in Keras and in PyTorch. Nothing here imports NumPy or a framework:
the spec is a declarative record, like a Keras ``get_config()``.

Conventions (see docs/DESIGN.md, 'Canonical layout' and 'Padding and pooling'):

* sizes are ``(height, width)`` pairs; an ``int`` is accepted and doubled;
* ``padding`` is ``"valid"`` or ``"same"`` (TensorFlow's rule for every stride: the
  extra row/column goes at the bottom/right);
* an optional ``activation`` on ``Conv2D``/``Dense`` is an :class:`Activation`; a plain
  name such as ``"relu"`` is accepted and converted.

Invalid values fail at construction with a ``ValueError`` that names the layer kind,
the field and what is allowed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

PADDINGS = ("valid", "same")
ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")
#: Keras's ``LeakyReLU`` default slope; torch's is 0.01, so the builders always pass it.
DEFAULT_LEAKY_SLOPE = 0.3

Pair = Tuple[int, int]


def _fail(kind: str, name: str, value, allowed: str):
    raise ValueError(f"{kind}: invalid {name}={value!r}; {allowed}")


def _pair(kind: str, name: str, value, *, allow_none: bool = False) -> Optional[Pair]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        _fail(kind, name, value, "expected a positive int or a (height, width) pair of positive ints")
    try:
        pair = (value, value) if isinstance(value, int) else tuple(value)
    except TypeError:
        _fail(kind, name, value, "expected a positive int or a (height, width) pair of positive ints")
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
        _fail(kind, name, value, "expected a positive int or a (height, width) pair of positive ints")
    return pair  # type: ignore[return-value]


def _padding(kind: str, value) -> str:
    if value not in PADDINGS:
        _fail(kind, "padding", value, f"allowed: {', '.join(PADDINGS)}")
    return value


@dataclass(frozen=True)
class Activation:
    """An element-wise (or, for softmax, per-sample over the last axis) nonlinearity.

    ``negative_slope`` is used by ``leaky_relu`` only: ``f(x) = x`` for ``x >= 0`` and
    ``negative_slope * x`` otherwise.
    """

    name: str
    negative_slope: float = DEFAULT_LEAKY_SLOPE

    def __post_init__(self):
        if self.name not in ACTIVATIONS:
            _fail("Activation", "name", self.name, f"allowed: {', '.join(ACTIVATIONS)}")
        slope = self.negative_slope
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not 0 <= slope < float("inf"):
            _fail("Activation", "negative_slope", slope, "expected a finite number >= 0")
        object.__setattr__(self, "negative_slope", float(slope))


ActivationLike = Union[None, str, Activation]


def _activation(kind: str, value: ActivationLike) -> Optional[Activation]:
    if value is None or isinstance(value, Activation):
        return value
    if isinstance(value, str):
        if value not in ACTIVATIONS:
            _fail(kind, "activation", value, f"allowed: None or one of {', '.join(ACTIVATIONS)}")
        return Activation(value)
    _fail(kind, "activation", value, "expected None, an activation name or an Activation")


@dataclass(frozen=True)
class Conv2D:
    """2-D cross-correlation. Kernel ``W[out, in, kh, kw]``, bias ``b[out]`` (scratch layout)."""

    filters: int
    kernel_size: Pair = (3, 3)
    strides: Pair = (1, 1)
    padding: str = "valid"
    activation: Optional[Activation] = None

    def __post_init__(self):
        if isinstance(self.filters, bool) or not isinstance(self.filters, int) or self.filters <= 0:
            _fail("Conv2D", "filters", self.filters, "expected a positive int")
        object.__setattr__(self, "kernel_size", _pair("Conv2D", "kernel_size", self.kernel_size))
        object.__setattr__(self, "strides", _pair("Conv2D", "strides", self.strides))
        object.__setattr__(self, "padding", _padding("Conv2D", self.padding))
        object.__setattr__(self, "activation", _activation("Conv2D", self.activation))


@dataclass(frozen=True)
class _Pool2D:
    pool_size: Pair = (2, 2)
    strides: Optional[Pair] = None  # None: equal to pool_size, as in Keras
    padding: str = "valid"

    def __post_init__(self):
        kind = type(self).__name__
        object.__setattr__(self, "pool_size", _pair(kind, "pool_size", self.pool_size))
        strides = _pair(kind, "strides", self.strides, allow_none=True)
        object.__setattr__(self, "strides", strides if strides is not None else self.pool_size)
        object.__setattr__(self, "padding", _padding(kind, self.padding))


@dataclass(frozen=True)
class MaxPool2D(_Pool2D):
    """Max pooling; "same" padding pads with -inf, the gradient goes to the first maximum."""


@dataclass(frozen=True)
class AvgPool2D(_Pool2D):
    """Average pooling; with "same" padding the padded cells are excluded from the mean (as Keras)."""


@dataclass(frozen=True)
class Flatten:
    """Flatten (C, H, W) to C*H*W in C, H, W (row-major) order; Keras flattens H, W, C."""


@dataclass(frozen=True)
class Dense:
    """Fully connected layer ``y = x W + b`` with kernel ``W[in, out]``, bias ``b[out]``."""

    units: int
    activation: Optional[Activation] = None

    def __post_init__(self):
        if isinstance(self.units, bool) or not isinstance(self.units, int) or self.units <= 0:
            _fail("Dense", "units", self.units, "expected a positive int")
        object.__setattr__(self, "activation", _activation("Dense", self.activation))


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout: in training, zero with probability ``rate`` and scale by 1/(1-rate)."""

    rate: float

    def __post_init__(self):
        r = self.rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not (0.0 <= r < 1.0):
            _fail("Dropout", "rate", r, "expected a number in [0, 1)")
        object.__setattr__(self, "rate", float(r))


Layer = Union[Conv2D, MaxPool2D, AvgPool2D, Flatten, Dense, Activation, Dropout]
LAYER_KINDS = (Conv2D, MaxPool2D, AvgPool2D, Flatten, Dense, Activation, Dropout)
PARAMETRIC = (Conv2D, Dense)


def validate(layers) -> tuple:
    """Return ``layers`` as a tuple after checking each entry is a spec layer."""
    try:
        layers = tuple(layers)
    except TypeError:
        raise TypeError(f"layers: expected a sequence of spec layers, got {type(layers).__name__}") from None
    if not layers:
        raise ValueError("layers: the architecture is empty; give at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, LAYER_KINDS):
            names = ", ".join(k.__name__ for k in LAYER_KINDS)
            raise TypeError(f"layer {i}: {layer!r} is not a spec layer; allowed kinds: {names}")
    return layers
