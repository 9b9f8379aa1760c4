"""One-call weight transfer between Keras and PyTorch, through the scratch layout.

``keras_models`` and ``torch_models`` never import each other (docs/DESIGN.md, "Layering"), so
the two directions live here: each reads the source model's spec and weights in the
canonical scratch layout, builds (or fills) the target, and checks everything before
copying (the checks are the target package's ``from_scratch``).
"""
from __future__ import annotations

from .runtime import import_framework


def keras_to_torch(keras_model, torch_model=None):
    """Weights of a Keras ``Sequential`` in a torch ``nn.Sequential``.

    ``torch_model``: an existing model to fill (its layers must match); by default one
    is built from the Keras model's spec, in the Keras model's dtype.
    """
    km = import_framework("keras")
    tm = import_framework("torch")
    state = km.to_scratch(keras_model)
    if torch_model is None:
        dtype = next(iter(state.values())).dtype if state else "float64"
        torch_model = tm.build(km.spec_of(keras_model), km.input_shape_of(keras_model), dtype=dtype)
    tm.from_scratch(torch_model, state)
    return torch_model


def torch_to_keras(torch_model, input_shape, keras_model=None):
    """Weights of a torch ``nn.Sequential`` (NCHW ``input_shape``) in a Keras ``Sequential``."""
    km = import_framework("keras")
    tm = import_framework("torch")
    state = tm.to_scratch(torch_model)
    if keras_model is None:
        dtype = next(iter(state.values())).dtype.name if state else "float64"
        keras_model = km.build(tm.spec_of(torch_model, input_shape), input_shape, dtype=dtype)
    km.from_scratch(keras_model, state)
    return keras_model
