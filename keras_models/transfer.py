"""Weights between the scratch layout and a Keras model, and a checked NCHW forward.

Following nanoGPT's ``from_pretrained``: the conversions are the explicit table of
:mod:`keras_models.layout`, and every key, shape and dtype is checked before anything is
assigned, so a failed transfer leaves the Keras model untouched.
"""
from __future__ import annotations

import keras
import numpy as np

from scratch.checks import check_input

from .builder import dtype_name, input_shape_of
from .layout import scratch_shape, to_keras_array, to_scratch_array, weight_plan

def _weights(item) -> dict:
    return {"kernel": item["layer"].kernel, "bias": item["layer"].bias}


def _label(item) -> str:
    return f"layer {item['index']} '{item['layer'].name}' ({item['kind']})"


def from_scratch(model, state) -> None:
    """Copy a scratch ``state_dict()`` (canonical layout) into the Keras ``model``.

    ``state`` maps ``"<spec index>.kernel"`` / ``"<spec index>.bias"`` to arrays (a scratch
    model is accepted too). Checked first, copied only if everything matches: the layers
    (through :func:`spec_of`), missing and unexpected keys, every shape (in scratch layout)
    and dtype (equal to the Keras variable's), finiteness. Errors name the layer index and
    Keras name, the key and both shapes.
    """
    if hasattr(state, "state_dict") and callable(state.state_dict):
        state = state.state_dict()
    if not isinstance(state, dict):
        raise TypeError(f"state: expected a dict of arrays (a scratch state_dict()), got {type(state).__name__}")
    plan = weight_plan(model)
    expected = {f"{item['index']}.{key}": (item, key) for item in plan for key in ("kernel", "bias")}
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        notes = []
        for k in extra:
            head = str(k).split(".")[0]
            if head.isdigit() and int(head) < len(model.layers):
                layer = model.layers[int(head)]
                notes.append(f"{k!r}: layer {head} '{layer.name}' is a {type(layer).__name__} without such a weight")
            elif head.isdigit():
                notes.append(f"{k!r}: the model has only {len(model.layers)} layers")
        raise KeyError(
            f"state dict does not match Keras model '{model.name}': missing keys {missing}, unexpected keys "
            f"{extra}{' (' + '; '.join(notes) + ')' if notes else ''}; the model's keys are {list(expected)}"
        )
    converted = []
    for k, (item, key) in expected.items():
        variable = _weights(item)[key]
        keras_shape = tuple(variable.shape)
        want = scratch_shape(item, key, keras_shape)
        arr = np.asarray(state[k])
        if arr.shape != want:
            raise ValueError(
                f"{_label(item)}: {k} has shape {arr.shape}, the Keras model needs {want} "
                f"(scratch layout; the Keras variable is {keras_shape})"
            )
        if arr.dtype != np.dtype(variable.dtype):
            raise TypeError(
                f"{_label(item)}: {k} has dtype {arr.dtype}, the Keras variable is {variable.dtype} "
                f"(shape {arr.shape}); cast the state or build the model with dtype={arr.dtype.name!r}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{_label(item)}: {k} (shape {arr.shape}) contains NaN or inf")
        converted.append((variable, to_keras_array(item, key, arr)))
    for variable, value in converted:  # all checks passed: copy
        variable.assign(value)


def to_scratch(model) -> dict:
    """The weights of a Keras ``model`` as a scratch ``state_dict()`` (canonical layout, copies).

    Works on models from :func:`keras_models.build` and on any Sequential :func:`spec_of`
    reads; arrays keep the Keras variables' dtype.
    """
    out = {}
    for item in weight_plan(model):
        for key, variable in _weights(item).items():
            out[f"{item['index']}.{key}"] = to_scratch_array(item, key, np.asarray(keras.ops.convert_to_numpy(variable)))
    return out


# --------------------------------------------------------------------------- data
def model_dtype(model) -> str:
    """The one compute dtype of a Keras model's layers and input (an error if mixed)."""
    dtypes = {dtype_name(layer.compute_dtype) for layer in model.layers}
    dtypes.add(dtype_name(model.inputs[0].dtype))
    if len(dtypes) != 1:
        raise TypeError(f"model '{model.name}' mixes dtypes {sorted(dtypes)}; give every layer the same dtype")
    return dtypes.pop()


def to_native(x: np.ndarray) -> np.ndarray:
    """Canonical NCHW -> Keras NHWC (contiguous); (N, F) is returned as it is."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def to_canonical(x: np.ndarray) -> np.ndarray:
    """Keras NHWC -> canonical NCHW; (N, F) is returned as it is."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def forward(model, x, *, training: bool = False) -> np.ndarray:
    """Run a Keras Sequential on canonical data and return canonical NumPy outputs.

    ``x`` is NCHW (or (N, F)) of the model's dtype, checked like scratch input (an NHWC
    array gets an error with a transpose hint); it is transposed to NHWC once. Image
    outputs come back NCHW.
    """
    x = check_input(x, input_shape_of(model), model_dtype(model))
    out = model(to_native(x), training=training)
    return to_canonical(np.asarray(keras.ops.convert_to_numpy(out)))
