"""Weights between the scratch layout and a Keras model, and a checked NCHW forward.

Following nanoGPT's ``from_pretrained``: the conversions are an explicit table
(:data:`TRANSPOSED`), and every key, shape and dtype is checked before anything is
assigned, so a failed transfer leaves the Keras model untouched.
"""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from scratch import spec as S  # noqa: E402
from scratch.data import check_input as scratch_check_input  # noqa: E402

from .builder import dtype_name, entry_shapes, input_shape_of, spec_of  # noqa: E402

#: Scratch -> Keras axis orders of the weights that are transposed (nanoGPT's list);
#: every other weight (Dense kernel, biases) keeps its layout, except that the first
#: Dense after a Flatten of an image has its rows permuted (see :func:`flatten_permutation`).
TRANSPOSED = {("Conv2D", "kernel"): (2, 3, 1, 0)}  # W[out, in, kh, kw] -> (kh, kw, in, out)
#: Keras -> scratch: the inverse axis orders.
TRANSPOSED_BACK = {k: tuple(int(a) for a in np.argsort(v)) for k, v in TRANSPOSED.items()}  # (3, 2, 0, 1)


def flatten_permutation(chw: tuple) -> np.ndarray:
    """Row permutation of the Dense after a Flatten of a canonical (C, H, W) input.

    Keras's flat feature ``p`` (H, W, C order) is scratch's feature ``perm[p]`` (C, H, W
    order), so ``keras_kernel = scratch_kernel[perm]`` and
    ``scratch_kernel = keras_kernel[argsort(perm)]``.
    """
    c, h, w = chw
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()


def _plan(model) -> list:
    """One entry per parametric layer: index, Keras layer, kind, row permutation (or None)."""
    spec = spec_of(model)
    shapes = entry_shapes(spec, input_shape_of(model))
    plan, pending = [], None
    for i, (layer, entry) in enumerate(zip(model.layers, spec)):
        if isinstance(entry, S.Flatten):
            chw = shapes[i][0]
            pending = flatten_permutation(chw) if len(chw) == 3 else pending
        elif isinstance(entry, (S.Conv2D, S.Dense)):
            kind = type(entry).__name__
            perm = pending if kind == "Dense" else None
            if kind == "Dense":
                pending = None
            plan.append({"index": i, "layer": layer, "kind": kind, "perm": perm})
    return plan


def _weights(item) -> dict:
    return {"kernel": item["layer"].kernel, "bias": item["layer"].bias}


def _to_scratch_array(item, key: str, value: np.ndarray) -> np.ndarray:
    axes = TRANSPOSED_BACK.get((item["kind"], key))
    if axes is not None:
        value = value.transpose(axes)
    if key == "kernel" and item["perm"] is not None:
        value = value[np.argsort(item["perm"])]
    return np.ascontiguousarray(value)


def _to_keras_array(item, key: str, value: np.ndarray) -> np.ndarray:
    axes = TRANSPOSED.get((item["kind"], key))
    if axes is not None:
        value = value.transpose(axes)
    if key == "kernel" and item["perm"] is not None:
        value = value[item["perm"]]
    return np.ascontiguousarray(value)


def _scratch_shape(item, key: str, keras_shape: tuple) -> tuple:
    axes = TRANSPOSED_BACK.get((item["kind"], key))
    return tuple(keras_shape[a] for a in axes) if axes is not None else tuple(keras_shape)


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
    plan = _plan(model)
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
        want = _scratch_shape(item, key, keras_shape)
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
        converted.append((variable, _to_keras_array(item, key, arr)))
    for variable, value in converted:  # all checks passed: copy
        variable.assign(value)


def to_scratch(model) -> dict:
    """The weights of a Keras ``model`` as a scratch ``state_dict()`` (canonical layout, copies).

    Works on models from :func:`keras_models.build` and on any Sequential :func:`spec_of`
    reads; arrays keep the Keras variables' dtype.
    """
    out = {}
    for item in _plan(model):
        for key, variable in _weights(item).items():
            out[f"{item['index']}.{key}"] = _to_scratch_array(item, key, np.asarray(keras.ops.convert_to_numpy(variable)))
    return out


# --------------------------------------------------------------------------- data
def model_dtype(model) -> str:
    """The one compute dtype of a Keras model's layers and input (an error if mixed)."""
    dtypes = {dtype_name(layer.compute_dtype) for layer in model.layers}
    dtypes.add(dtype_name(model.inputs[0].dtype))
    if len(dtypes) != 1:
        raise TypeError(f"model '{model.name}' mixes dtypes {sorted(dtypes)}; give every layer the same dtype")
    return dtypes.pop()


def check_input(x, input_shape: tuple, dtype, name: str = "x") -> np.ndarray:
    """Check canonical NCHW (or (N, F)) data exactly as the scratch engine does: rank, shape
    (with a hint when the data look channels-last), dtype, non-empty, finite."""
    return scratch_check_input(x, input_shape, dtype, name)


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
