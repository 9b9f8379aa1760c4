"""Losses of the one objective (see docs/DESIGN.md, 'The objective and L2'): the mean over the batch of the
per-sample loss, where the per-sample loss of several outputs is their mean (MSE, BCE)
or sum (CCE), as Keras computes them.

Categorical cross-entropy is fused with a final softmax and binary cross-entropy with a
final sigmoid: both are computed from the logits ``z`` with log-sum-exp and softplus,
so large logits give neither NaN nor inf, and the gradient is the exact
``(softmax(z) - y) / N`` (resp. ``(sigmoid(z) - y) / (N K)``).
"""
from __future__ import annotations

import numpy as np

from .layers import log_softmax, sigmoid, softmax

LOSSES = ("categorical_crossentropy", "binary_crossentropy", "mse")


class Loss:
    """``value_and_grad(a, y)`` returns the mean loss and its gradient with respect to ``a``.

    ``a`` is (N, K): the logits when :attr:`fused_activation` is set (the model skips its
    final activation for the loss), otherwise the model's outputs.
    """

    name = ""
    fused_activation: str | None = None

    def value_and_grad(self, a: np.ndarray, y: np.ndarray):
        raise NotImplementedError

    def outputs(self, a: np.ndarray) -> np.ndarray:
        """Model outputs from what ``value_and_grad`` takes (applies the fused activation)."""
        return a


class CategoricalCrossentropy(Loss):
    """``-sum_k y_k log softmax(z)_k`` per sample, mean over the batch; needs a final softmax."""

    name = "categorical_crossentropy"
    fused_activation = "softmax"

    def value_and_grad(self, z, y):
        n = z.shape[0]
        value = -np.sum(y * log_softmax(z)) / n
        p = softmax(z)
        # d/dz of -sum y (z - lse(z)) is -y + sum(y) p; with one-hot rows sum(y) = 1.
        grad = (p * y.sum(axis=1, keepdims=True) - y) / z.dtype.type(n)
        return float(value), grad

    def outputs(self, z):
        return softmax(z)


class BinaryCrossentropy(Loss):
    """Mean over outputs and batch of ``softplus(z) - y z``; needs a final sigmoid."""

    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def value_and_grad(self, z, y):
        # softplus(z) = max(z, 0) + log1p(exp(-|z|)): finite for any finite z.
        value = np.mean(np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z))))
        grad = (sigmoid(z) - y) / z.dtype.type(z.size)
        return float(value), grad

    def outputs(self, z):
        return sigmoid(z)


class MeanSquaredError(Loss):
    """Mean over outputs and batch of ``(a - y)**2``, on the model's outputs."""

    name = "mse"

    def value_and_grad(self, a, y):
        diff = a - y
        return float(np.mean(diff * diff)), (2 / a.dtype.type(a.size)) * diff


_LOSSES = {cls.name: cls for cls in (CategoricalCrossentropy, BinaryCrossentropy, MeanSquaredError)}
_ALIASES = {"mean_squared_error": "mse", "crossentropy": "categorical_crossentropy"}


def get(name) -> Loss:
    """A loss by name (``categorical_crossentropy``, ``binary_crossentropy``, ``mse``)."""
    if isinstance(name, Loss):
        return name
    key = _ALIASES.get(name, name)
    if key not in _LOSSES:
        raise ValueError(f"loss: unknown {name!r}; allowed: {', '.join(LOSSES)}")
    return _LOSSES[key]()
