"""Spec <-> ``keras.Sequential``: :func:`build` writes the model a Keras user would write
(NHWC, one Keras layer per spec entry), :func:`spec_of` reads an idiomatic Sequential back.

See the package docstring for the conventions (layout, names, leaky_relu slope, dtype).
"""
from __future__ import annotations

import re

import keras
import numpy as np
from keras import layers as KL

import scratch
from scratch import spec as S
from scratch.checks import check_dtype, check_l2, check_seed
from scratch.layers import ShapeError

#: What spec_of reads, for error messages.
SUPPORTED = (
    "Conv2D (channels_last, dilation 1, groups 1, use_bias=True, padding valid/same), "
    "MaxPooling2D, AveragePooling2D (channels_last, padding valid/same), Flatten (channels_last), "
    "Dense (use_bias=True), Activation, ReLU (plain), LeakyReLU, Softmax (axis=-1), Dropout (noise_shape=None); "
    "activations: linear, relu, leaky_relu (function or LeakyReLU layer), sigmoid, tanh, softmax"
)


# --------------------------------------------------------------------------- helpers
def dtype_name(dtype) -> str:
    """``"float32"`` or ``"float64"`` from any NumPy/Keras spelling; otherwise a TypeError
    (:func:`scratch.checks.check_dtype`)."""
    return check_dtype(dtype).name


def to_keras_shape(shape: tuple) -> tuple:
    """Canonical one-sample shape (C, H, W) -> Keras (H, W, C); (F,) stays (F,)."""
    shape = tuple(shape)
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


def to_canonical_shape(shape: tuple) -> tuple:
    """Keras one-sample shape (H, W, C) -> canonical (C, H, W); (F,) stays (F,)."""
    shape = tuple(shape)
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape


def entry_shapes(layers, input_shape) -> list:
    """Canonical (input shape, output shape) of every spec entry, by the scratch engine's
    shape rules (which raise a ShapeError naming the layer for an impossible stack)."""
    ref = scratch.build(layers, input_shape, dtype=np.float64)
    shapes = [None] * len(ref.layers)
    for op in ref.ops:
        first = shapes[op.index]
        shapes[op.index] = (op.input_shape if first is None else first[0], op.output_shape)
    return shapes


def _f32(value: float) -> float:
    """``value`` as TensorFlow keeps an op's float attribute: rounded to float32."""
    return float(np.float32(value))


# --------------------------------------------------------------------------- leaky relu
@keras.saving.register_keras_serializable(package="keras_models")
class ExactLeakyReLU(KL.LeakyReLU):
    """``keras.layers.LeakyReLU`` whose slope is applied in the layer's compute dtype.

    TensorFlow's ``LeakyRelu`` op (what the stock layer calls) keeps ``alpha`` as a float32
    attribute, so a float64 stock layer with ``negative_slope=0.1`` multiplies by
    ``float32(0.1)``. This layer computes ``where(x > 0, x, x * negative_slope)`` with the slope
    converted to the input's dtype, the scratch engine's formula; the derivative at 0 is the
    slope, as in TensorFlow and scratch. In float32 it is identical to the stock layer.
    """

    def call(self, inputs):
        return keras.ops.where(inputs > 0, inputs, inputs * self.negative_slope)


# --------------------------------------------------------------------------- l2
@keras.saving.register_keras_serializable(package="keras_models")
class ExactL2(keras.regularizers.L2):
    """``keras.regularizers.L2`` whose factor is converted to the weight's dtype exactly.

    The stock ``L2.__call__`` computes ``ops.cast(self.l2, x.dtype) * sum(square(x))``; the
    cast goes through a float32 tensor, so a float64 model with ``l2(1e-3)`` really uses
    ``float32(1e-3) = 0.0010000000474974513`` (4.7e-8 relative). This subclass converts the
    Python float straight to ``x.dtype``: the penalty is ``lambda * sum(W**2)`` with the
    lambda the user gave, as in scratch and torch. In float32 it equals the stock one.
    """

    def __call__(self, x):
        return keras.ops.convert_to_tensor(self.l2, dtype=x.dtype) * keras.ops.sum(keras.ops.square(x))


# --------------------------------------------------------------------------- build
_KIND_NAMES = {
    S.Conv2D: "conv2d", S.MaxPool2D: "max_pooling2d", S.AvgPool2D: "average_pooling2d",
    S.Flatten: "flatten", S.Dense: "dense", S.Dropout: "dropout",
}


def _fused_activation(act, dtype: str, name: str):
    """The ``activation=`` argument of a Keras Conv2D/Dense for a spec activation."""
    if act is None or act.name == "identity":
        return "linear"
    if act.name == "leaky_relu":
        return ExactLeakyReLU(negative_slope=act.negative_slope, dtype=dtype, name=f"{name}_leaky_relu")
    return act.name


def _keras_layer(i: int, layer, dtype: str, l2: float, seed):
    if isinstance(layer, S.Activation):
        name = f"{layer.name}_{i}"
        if layer.name == "leaky_relu":
            return ExactLeakyReLU(negative_slope=layer.negative_slope, dtype=dtype, name=name)
        return KL.Activation("linear" if layer.name == "identity" else layer.name, dtype=dtype, name=name)
    name = f"{_KIND_NAMES[type(layer)]}_{i}"
    if isinstance(layer, (S.Conv2D, S.Dense)):
        common = dict(
            activation=_fused_activation(layer.activation, dtype, name),
            kernel_regularizer=ExactL2(l2) if l2 else None,
            kernel_initializer=(keras.initializers.GlorotUniform(seed=seed + i) if seed is not None
                                else "glorot_uniform"),
            dtype=dtype,
            name=name,
        )
        if isinstance(layer, S.Conv2D):
            return KL.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding, **common)
        return KL.Dense(layer.units, **common)
    if isinstance(layer, S.MaxPool2D):
        return KL.MaxPooling2D(layer.pool_size, strides=layer.strides, padding=layer.padding, dtype=dtype, name=name)
    if isinstance(layer, S.AvgPool2D):
        return KL.AveragePooling2D(layer.pool_size, strides=layer.strides, padding=layer.padding, dtype=dtype,
                                   name=name)
    if isinstance(layer, S.Flatten):
        return KL.Flatten(dtype=dtype, name=name)
    if isinstance(layer, S.Dropout):
        return KL.Dropout(layer.rate, seed=None if seed is None else seed + i, dtype=dtype, name=name)
    raise TypeError(f"layer {i}: {layer!r} is not a spec layer")  # pragma: no cover - validate() catches it


def build(layers, input_shape, *, dtype="float64", l2: float = 0.0, seed=None, name=None) -> keras.Sequential:
    """A ``keras.Sequential`` for spec ``layers``, NHWC, as a Keras user writes it.

    Parameters
    ----------
    layers : sequence of spec layers (:mod:`scratch.spec`)
    input_shape : tuple
        Canonical one-sample shape ``(C, H, W)`` or ``(F,)``; the Keras ``Input`` is
        ``(H, W, C)`` (resp. ``(F,)``).
    dtype : "float32" or "float64"
        Given to the ``Input`` and to every layer: weights and computation in that dtype.
    l2 : float
        ``kernel_regularizer=ExactL2(l2)`` (``keras.regularizers.l2(l2)`` with the factor kept
        exactly in float64, see :class:`ExactL2`) on every Conv2D/Dense when > 0.
    seed : int or None
        None: Keras's unseeded Glorot-uniform kernels; an int: ``GlorotUniform(seed=seed + i)``
        for spec entry ``i`` (and seeded Dropout), reproducible.
    name : str, optional
        The model's name (default ``"sequential"``).

    Returns
    -------
    keras.Sequential
        ``model.layers[i]`` is spec entry ``i``, named ``<kind>_<i>``.
    """
    layers = S.validate(layers)
    dtype = dtype_name(dtype)
    l2 = check_l2(l2)
    seed = check_seed(seed, allow_none=True)
    shapes = entry_shapes(layers, input_shape)  # validates input_shape and the stack, naming the layer
    canonical_input = shapes[0][0]
    model = keras.Sequential(
        [keras.Input(shape=to_keras_shape(canonical_input), dtype=dtype, name="input")]
        + [_keras_layer(i, layer, dtype, l2, seed) for i, layer in enumerate(layers)],
        name=name or "sequential",
    )
    for i, (layer, (_, out)) in enumerate(zip(model.layers, shapes)):
        got = tuple(layer.output.shape[1:])
        if got != to_keras_shape(out):  # pragma: no cover - a bug, not a user error
            raise AssertionError(f"layer {i} '{layer.name}': Keras output shape {got}, scratch {out}")
    return model


# --------------------------------------------------------------------------- read back
def _require_sequential(model, what: str):
    if not isinstance(model, keras.Sequential):
        raise TypeError(f"{what}: expected a keras.Sequential, got {type(model).__name__}")


def input_shape_of(model) -> tuple:
    """Canonical one-sample input shape of a Keras Sequential: ``(C, H, W)`` or ``(F,)``."""
    _require_sequential(model, "input_shape_of")
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            f"model '{model.name}' has no input shape yet: start it with keras.Input(shape=(H, W, C)) "
            "or call model.build((None, H, W, C))"
        )
    shape = tuple(inputs[0].shape[1:])
    if len(shape) not in (1, 3) or any(d is None for d in shape):
        raise ValueError(
            f"model '{model.name}': input shape {tuple(inputs[0].shape)} is not supported; "
            "expected (None, H, W, C) images (channels_last) or (None, F) features"
        )
    return to_canonical_shape(tuple(int(d) for d in shape))


def _unsupported(i, layer, what: str):
    raise ValueError(
        f"layer {i} '{layer.name}' ({type(layer).__name__}): {what} is not supported; supported: {SUPPORTED}"
    )


def _activation_functions() -> dict:
    A = keras.activations
    return {A.linear: "identity", A.relu: "relu", A.sigmoid: "sigmoid", A.tanh: "tanh", A.softmax: "softmax"}


def _activation_of(i, layer, fn):
    """A spec Activation for a Keras activation (function or layer), or an error."""
    if isinstance(fn, ExactLeakyReLU):
        return S.Activation("leaky_relu", float(fn.negative_slope))
    if type(fn) is KL.LeakyReLU:
        return S.Activation("leaky_relu", _f32(fn.negative_slope))
    if fn is keras.activations.leaky_relu:  # the function's default slope, 0.2, as a float32 attribute
        return S.Activation("leaky_relu", _f32(0.2))
    for keras_fn, name in _activation_functions().items():
        if fn is keras_fn:
            return S.Activation(name)
    label = getattr(fn, "__name__", None) or getattr(fn, "name", None) or repr(fn)
    _unsupported(i, layer, f"activation {label!r}")


def _fused(i, layer):
    act = _activation_of(i, layer, layer.activation)
    return None if act.name == "identity" else act


def _check_channels_last(i, layer):
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt != "channels_last":
        _unsupported(i, layer, f"data_format={fmt!r} (Keras models here are NHWC, channels_last)")


def _pair(value) -> tuple:
    return tuple(int(v) for v in value)


def _spec_layer(i, layer):
    kind = type(layer)
    if kind is KL.Conv2D:
        _check_channels_last(i, layer)
        if _pair(layer.dilation_rate) != (1, 1):
            _unsupported(i, layer, f"dilation_rate={layer.dilation_rate}")
        if layer.groups != 1:
            _unsupported(i, layer, f"groups={layer.groups}")
        if not layer.use_bias:
            _unsupported(i, layer, "use_bias=False")
        if getattr(layer, "lora_enabled", False):
            _unsupported(i, layer, "LoRA")
        if layer.padding not in S.PADDINGS:
            _unsupported(i, layer, f"padding={layer.padding!r}")
        return S.Conv2D(int(layer.filters), _pair(layer.kernel_size), _pair(layer.strides), layer.padding,
                        _fused(i, layer))
    if kind is KL.Dense:
        if not layer.use_bias:
            _unsupported(i, layer, "use_bias=False")
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            _unsupported(i, layer, "LoRA or quantization")
        return S.Dense(int(layer.units), _fused(i, layer))
    if kind in (KL.MaxPooling2D, KL.AveragePooling2D):
        _check_channels_last(i, layer)
        if layer.padding not in S.PADDINGS:
            _unsupported(i, layer, f"padding={layer.padding!r}")
        cls = S.MaxPool2D if kind is KL.MaxPooling2D else S.AvgPool2D
        return cls(_pair(layer.pool_size), _pair(layer.strides), layer.padding)
    if kind is KL.Flatten:
        _check_channels_last(i, layer)
        return S.Flatten()
    if kind is KL.Dropout:
        if layer.noise_shape is not None:
            _unsupported(i, layer, f"noise_shape={layer.noise_shape}")
        return S.Dropout(float(layer.rate))
    if kind is KL.Activation:
        return _activation_of(i, layer, layer.activation)
    if kind in (KL.LeakyReLU, ExactLeakyReLU):
        return _activation_of(i, layer, layer)
    if kind is KL.ReLU:
        if layer.max_value is not None or float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0.0:
            _unsupported(i, layer, f"ReLU(max_value={layer.max_value}, negative_slope={layer.negative_slope}, "
                                   f"threshold={layer.threshold}) (only the plain ReLU())")
        return S.Activation("relu")
    if kind is KL.Softmax:
        axis = layer.axis
        if isinstance(axis, (list, tuple)):
            axis = axis[0] if len(axis) == 1 else axis
        if axis != -1:
            _unsupported(i, layer, f"Softmax(axis={layer.axis}) (only the last, channel/feature axis)")
        return S.Activation("softmax")
    _unsupported(i, layer, "this layer kind")


def spec_of(model) -> tuple:
    """The spec layers of an idiomatic ``keras.Sequential`` (entry ``i`` is ``model.layers[i]``).

    Reads the forward computation only (regularizers, constraints and initialisers are
    training settings: see :func:`l2_of`). The shapes are checked against the scratch
    engine's rules and against the Keras layers' own output shapes.

    Raises
    ------
    TypeError
        ``model`` is not a ``keras.Sequential``.
    ValueError
        An unsupported layer or setting (the message names the layer and what is supported),
        an unknown input shape, or a stack scratch cannot represent (e.g. a Dense on an image).
    """
    in_shape = input_shape_of(model)
    if not model.layers:
        raise ValueError(f"model '{model.name}' has no layers")
    spec = tuple(_spec_layer(i, layer) for i, layer in enumerate(model.layers))
    try:
        shapes = entry_shapes(spec, in_shape)
    except ShapeError as exc:
        match = re.match(r"layer (\d+)", str(exc))
        i = int(match.group(1)) if match else None
        where = f"layer {i} '{model.layers[i].name}'" if i is not None else f"model '{model.name}'"
        raise ValueError(f"{where}: the scratch engine cannot represent this stack: {exc}") from None
    for i, (layer, (_, out)) in enumerate(zip(model.layers, shapes)):
        got = tuple(layer.output.shape[1:])
        if got != to_keras_shape(out):
            raise ValueError(f"layer {i} '{layer.name}': Keras output shape {got} differs from the spec's "
                             f"{to_keras_shape(out)} (canonical {out})")
    return spec


def l2_of(model) -> float:
    """The common ``l2(lambda)`` factor of the kernels of a Sequential (0.0 when none has one).

    The factor Keras applies: exact for :class:`ExactL2`, ``float(float32(lambda))`` for the
    stock ``keras.regularizers.l2`` / ``L1L2(l2=...)`` (which cast it through float32).

    Raises a ValueError when layers use different factors, L1 terms, or bias/activity
    regularizers, which the suite's objective (see docs/DESIGN.md, 'The objective and L2') does not have.
    """
    _require_sequential(model, "l2_of")
    factors = {}
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, (KL.Conv2D, KL.Dense)):
            continue
        for attr in ("bias_regularizer", "activity_regularizer"):
            if getattr(layer, attr, None) is not None:
                raise ValueError(f"layer {i} '{layer.name}': {attr} is not supported; only kernel_regularizer=l2(...)")
        reg = layer.kernel_regularizer
        if reg is None:
            factors[i] = 0.0
        elif isinstance(reg, ExactL2):
            factors[i] = float(reg.l2)
        elif type(reg) in (keras.regularizers.L2, keras.regularizers.L1L2) and float(getattr(reg, "l1", 0.0)) == 0.0:
            factors[i] = _f32(reg.l2)  # the stock regularizers cast lambda through float32
        else:
            raise ValueError(f"layer {i} '{layer.name}': kernel_regularizer {reg!r} is not supported; only l2(...)")
    values = set(factors.values())
    if len(values) > 1:
        detail = ", ".join(f"layer {i} '{model.layers[i].name}': {v}" for i, v in factors.items())
        raise ValueError(f"the kernels use different l2 factors ({detail}); the suite's objective has one lambda")
    return values.pop() if values else 0.0
