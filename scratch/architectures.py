"""Registry of named architectures: ``get(name)`` returns a tuple of spec layers.

Every framework builds these through its own builder, so ``course_cnn`` is the same
network in NumPy, Keras and PyTorch.
"""
from __future__ import annotations

from .spec import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D

_REGISTRY = {
    # The course's Keras CNN (seeds/002, "Running with Keras"): 10 filters 3x3, 2x2 max
    # pool, a 50-unit hidden layer and a 10-way softmax. Input (1, 8, 8) for digits.
    "course_cnn": (
        Conv2D(10, (3, 3), padding="valid", activation="relu"),
        MaxPool2D((2, 2)),
        Flatten(),
        Dense(50, activation="relu"),
        Dense(10, activation="softmax"),
    ),
    # The course's feed-forward net: one sigmoid hidden layer of 50 units.
    "course_ffnn": (
        Flatten(),
        Dense(50, activation="sigmoid"),
        Dense(10, activation="softmax"),
    ),
    # LeNet-style net for (1, 28, 28): "same" padding, a stride-2 convolution and
    # "same" average pooling (7 -> 4, padded cells excluded from the mean).
    "lenet": (
        Conv2D(6, (5, 5), padding="same", activation="relu"),
        MaxPool2D((2, 2)),
        Conv2D(16, (5, 5), strides=(2, 2), padding="same", activation="relu"),
        AvgPool2D((2, 2), padding="same"),
        Flatten(),
        Dense(120, activation="relu"),
        Dense(84, activation="relu"),
        Dense(10, activation="softmax"),
    ),
}


def names() -> tuple:
    """Names of the registered architectures, sorted."""
    return tuple(sorted(_REGISTRY))


def get(name: str) -> tuple:
    """Return the spec layers of architecture ``name``; unknown names list the valid ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown architecture {name!r}; registered: {', '.join(names())}") from None
