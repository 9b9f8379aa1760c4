"""Central-difference gradient checks in float64.

``relative_error(a, b) = |a - b| / max(|a| + |b|, tiny)`` element-wise; a check passes
when the largest relative error is at most ``tol`` (1e-6 by default), counting only
entries where ``|a - b|`` exceeds ``atol`` (for entries whose true gradient is ~0).

Kinks: ReLU and LeakyReLU have no derivative at 0 and max pooling none where a window's
maximum changes cell. A central difference whose two points ``w +- eps`` fall on two
sides of such a kink measures the average of two slopes, not the gradient, and gives a
relative error near 1 at an entry whose analytic gradient is right (it is common: a
ReLU input within ``eps`` of 0 is enough). :func:`check_model` therefore compares each
perturbed forward pass's branches (the sign of every ReLU input, the winning cell of
every max-pool window) with the unperturbed one and skips the entries whose difference
crosses a kink; ``skipped`` counts them per array.
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


def numerical_gradient(f, array: np.ndarray, eps: float = 1e-6, entries=None, smooth=None) -> np.ndarray:
    """d f() / d array by central differences, perturbing ``array`` in place (restored after).

    ``entries``: flat indices to differentiate (others are left NaN); None means all.
    ``smooth()``, called after each evaluation of ``f``, says whether that point lies on
    the same side of every kink as the unperturbed one; an entry where it does not is
    left NaN (not differentiable there by central differences).
    """
    grad = np.zeros_like(array, dtype=np.float64)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    if entries is not None:
        gflat[:] = np.nan
    for i in (range(flat.size) if entries is None else entries):  # the reference, not the engine
        old = flat[i]
        flat[i] = old + eps
        up = f()
        ok = smooth is None or smooth()
        flat[i] = old - eps
        down = f()
        ok = ok and (smooth is None or smooth())
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps) if ok else np.nan
    return grad


_KINKED = ("relu", "leaky_relu")


def _branches(model) -> list:
    """The branch every piecewise-linear op took in the last forward pass."""
    out = []
    for op in model.ops:
        act = getattr(op, "act", None)
        if act is not None and act.name in _KINKED:
            out.append(op._x > 0)
        elif getattr(op, "kind", None) == "MaxPool2D":
            out.append(op._cache[0].copy())
    return out


def check_model(model, x, y, eps: float = 1e-6, max_entries: int | None = None, seed: int = 0,
                skipped: dict | None = None) -> dict:
    """Relative errors of every parameter gradient and of the input gradient of the
    compiled float64 ``model``'s objective (data loss + L2) at (x, y).

    Returns ``{"<key>": error, ..., "input": error}``. Dropout is off (training=False is
    used for both the analytic and the numeric gradient). ``max_entries``: check at most
    that many seeded random entries of each array (for large models). Entries whose
    central difference crosses a kink (see the module docstring) are not compared; pass
    a dict as ``skipped`` to get their number per array.
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
    base = _branches(model)

    def smooth():
        return all(np.array_equal(a, b) for a, b in zip(base, _branches(model)))

    rng = np.random.default_rng(seed)

    def pick(arr):
        if max_entries is None or arr.size <= max_entries:
            return None
        return rng.choice(arr.size, size=max_entries, replace=False)

    errors = {}
    for key, param in [*model.parameters().items(), ("input", x)]:
        entries = pick(param)
        numeric = numerical_gradient(objective, param, eps, entries, smooth)
        errors[key] = relative_error(dx if key == "input" else analytic[key], numeric)
        if skipped is not None:
            tried = param.size if entries is None else len(entries)
            skipped[key] = int(np.isnan(numeric).sum()) - (param.size - tried)
    return errors


def check_function(f, df, x: np.ndarray, eps: float = 1e-6) -> float:
    """Relative error between ``df(x)`` and the central difference of scalar ``f`` at ``x``."""
    x = np.array(x, dtype=np.float64)
    return relative_error(df(x), numerical_gradient(lambda: f(x), x, eps))
