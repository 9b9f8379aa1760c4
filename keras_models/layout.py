"""The canonical weight layout of a Keras model: which layer holds which scratch weight, and
the array conversions between the two layouts (see docs/DESIGN.md, 'Canonical layout').

Following nanoGPT's ``from_pretrained``, the conversions are an explicit table
(:data:`TRANSPOSED`) plus one row permutation (:func:`flatten_permutation`);
:mod:`keras_models.transfer` copies weights with them, and the parity suite converts
gradients with the same functions, so the layout is defined once.
"""
from __future__ import annotations

import numpy as np

from scratch import spec as S

from .builder import entry_shapes, input_shape_of, spec_of

__all__ = ["TRANSPOSED", "TRANSPOSED_BACK", "flatten_permutation", "scratch_shape", "to_keras_array",
           "to_scratch_array", "weight_plan"]

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


def weight_plan(model) -> list:
    """Which Keras layer holds which scratch weight, and how its arrays are converted.

    Returns a list with one dict per parametric layer (Conv2D and Dense), in spec order:

    * ``"index"``: the spec index ``i`` (``model.layers[i]``), so the scratch keys are
      ``f"{i}.kernel"`` and ``f"{i}.bias"``;
    * ``"layer"``: the Keras layer (its ``kernel`` and ``bias`` variables);
    * ``"kind"``: ``"Conv2D"`` or ``"Dense"``, the key of :data:`TRANSPOSED`;
    * ``"perm"``: for the first Dense after a Flatten of an image, the row permutation
      of :func:`flatten_permutation` (``keras_kernel = scratch_kernel[perm]``); else None.

    Each dict is the ``item`` that :func:`to_scratch_array` and :func:`to_keras_array`
    take. The model is read with :func:`keras_models.spec_of`, which raises for layers the
    spec cannot express.
    """
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


def to_scratch_array(item, key: str, value: np.ndarray) -> np.ndarray:
    """A Keras weight (or its gradient) of ``item`` (from :func:`weight_plan`) in the scratch
    layout: ``key`` ``"kernel"`` or ``"bias"``; Conv2D kernels transposed back to
    ``W[out, in, kh, kw]``, the rows of a Dense after a Flatten un-permuted; C-contiguous."""
    axes = TRANSPOSED_BACK.get((item["kind"], key))
    if axes is not None:
        value = value.transpose(axes)
    if key == "kernel" and item["perm"] is not None:
        value = value[np.argsort(item["perm"])]
    return np.ascontiguousarray(value)


def to_keras_array(item, key: str, value: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_scratch_array`: a scratch-layout array as Keras stores it."""
    axes = TRANSPOSED.get((item["kind"], key))
    if axes is not None:
        value = value.transpose(axes)
    if key == "kernel" and item["perm"] is not None:
        value = value[item["perm"]]
    return np.ascontiguousarray(value)


def scratch_shape(item, key: str, keras_shape: tuple) -> tuple:
    """The scratch-layout shape of a Keras weight of shape ``keras_shape``."""
    axes = TRANSPOSED_BACK.get((item["kind"], key))
    return tuple(keras_shape[a] for a in axes) if axes is not None else tuple(keras_shape)
