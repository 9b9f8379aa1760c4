"""Central-difference gradient checks in float64.

``relative_error(a, b) = |a - b| / max(|a| + |b|, tiny)`` element-wise; a check passes
when the largest relative error is at most ``tol`` (1e-6 by default), counting only
entries where ``|a - b|`` exceeds ``atol`` (for entries whose true gradient is ~0).
"""
from __future__ import annotations

import numpy as np


def relative_error(analytic, numeric, atol: float = 1e-9) -> float:
    """Max element-wise relative error, ignoring entries that agree within ``atol``."""
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    diff = np.abs(a - n)
    rel = diff / np.maximum(np.abs(a) + np.abs(n), np.finfo(np.float64).tiny)
    rel[(diff <= atol) | np.isnan(n)] = 0.0  # NaN: an entry that was not differentiated
    return float(rel.max()) if rel.size else 0.0


def numerical_gradient(f, array: np.ndarray, eps: float = 1e-6, entries=None) -> np.ndarray:
    """d f() / d array by central differences, perturbing ``array`` in place (restored after).

    ``entries``: flat indices to differentiate (others are left NaN); None means all.
    """
    grad = np.zeros_like(array, dtype=np.float64)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    if entries is not None:
        gflat[:] = np.nan
    for i in (range(flat.size) if entries is None else entries):  # the reference, not the engine
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def check_model(model, x, y, eps: float = 1e-6, max_entries: int | None = None, seed: int = 0) -> dict:
    """Relative errors of every parameter gradient and of the input gradient of the
    compiled float64 ``model``'s objective (data loss + L2) at (x, y).

    Returns ``{"<key>": error, ..., "input": error}``. Dropout is off (training=False is
    used for both the analytic and the numeric gradient). ``max_entries``: check at most
    that many seeded random entries of each array (for large models).
    """
    if model.dtype != np.float64:
        raise TypeError("gradcheck: the model must be float64 (central differences need it)")
    model._require_compiled()
    x = np.array(x, dtype=np.float64)
    y = model.targets(y)

    def objective():
        value, _ = model._loss_and_gradients(x, y, False)
        return value

    # Analytic gradients with respect to parameters and input, from one pass.
    a, _ = model._loss_forward(x, False)
    _, da = model.loss.value_and_grad(a, y)
    dx = model._backward(da, model.ops[:-1] if model.loss.fused_activation else model.ops)
    model._loss_and_gradients(x, y, False)
    analytic = model.gradients()
    rng = np.random.default_rng(seed)

    def pick(arr):
        if max_entries is None or arr.size <= max_entries:
            return None
        return rng.choice(arr.size, size=max_entries, replace=False)

    errors = {}
    for key, param in model.parameters().items():
        errors[key] = relative_error(analytic[key], numerical_gradient(objective, param, eps, pick(param)))
    errors["input"] = relative_error(dx, numerical_gradient(objective, x, eps, pick(x)))
    return errors


def check_function(f, df, x: np.ndarray, eps: float = 1e-6) -> float:
    """Relative error between ``df(x)`` and the central difference of scalar ``f`` at ``x``."""
    x = np.array(x, dtype=np.float64)
    return relative_error(df(x), numerical_gradient(lambda: f(x), x, eps))
