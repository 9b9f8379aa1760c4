"""Loss hypotheses: value and gradient of categorical/binary cross-entropy and MSE.

The reference is :mod:`scratch.losses` (mean over the batch; per sample a sum over
classes for CCE, a mean over outputs for BCE and MSE), times N when the user's loss is a
sum (``reduction="sum"``). ``a`` is (N, K): logits for the cross-entropies, outputs for
MSE; ``quantity`` is ``"loss"`` (a 0-d array or float) or ``"loss gradient"`` (N, K).
A fitted scale of 1/K, N (for a mean) or 1/N (for a sum) is reported under its loss id.
"""
from __future__ import annotations

import numpy as np

from scratch import losses as SL
from scratch.layers import sigmoid, softmax

from . import ids
from .core import Candidate, match

QUANTITIES = ("loss", "loss gradient")
REDUCTIONS = ("mean", "sum")
EPSILONS = (1e-7, 1e-8, 1e-9, 1e-10, 1e-12, 1e-15)


def _cce(p, y, n):
    return -np.sum(y * np.log(p)) / n


def _candidates(name, a, y, quantity, per):
    n, k = a.shape
    if name == "categorical_crossentropy":
        p = softmax(a)
        for eps in EPSILONS:
            fix = f"you take log(p + {eps:g}) (or clip p) - compute the loss from the logits with log-softmax"
            if quantity == "loss":
                yield Candidate(ids.EPSILON, f"log(p + {eps:g})", fix, np.asarray(_cce(p + eps, y, n) * per))
                yield Candidate(ids.EPSILON, f"p clipped to [{eps:g}, 1 - {eps:g}]", fix,
                                np.asarray(_cce(np.clip(p, eps, 1 - eps), y, n) * per))
        if quantity == "loss gradient":
            yield Candidate(ids.LOSS_GRADIENT_OF_OUTPUTS, "the gradient with respect to the probabilities, -y/p",
                            "the loss is fused with its softmax, so its gradient with respect to the logits is "
                            "(softmax(z) - y) / N - do not divide by p", -y / p / n * per)
        q = np.exp(a - a.max(axis=0, keepdims=True))
        q = q / q.sum(axis=0, keepdims=True)
        fix = "softmax normalises each sample over its classes (axis 1) - not over the batch (axis 0)"
        if quantity == "loss":
            yield Candidate(ids.SOFTMAX_AXIS, "softmax over the batch axis", fix, np.asarray(_cce(q, y, n) * per))
        else:
            yield Candidate(ids.SOFTMAX_AXIS, "softmax over the batch axis", fix, (q - y) / n * per)
    elif name == "binary_crossentropy" and quantity == "loss gradient":
        p = sigmoid(a)
        yield Candidate(ids.LOSS_GRADIENT_OF_OUTPUTS, "the gradient with respect to the probabilities",
                        "the loss is fused with its sigmoid, so its gradient with respect to the logits is "
                        "(sigmoid(z) - y) / (N K) - do not divide by p (1 - p)", (p - y) / (p * (1 - p)) / (n * k) * per)


def _rename(d, k, n, reduction):
    """A scale of 1/K, N or 1/N is the loss's own mistake: report it under its id."""
    if d.id != ids.SCALE or d.factor is None:
        return d
    f = d.factor
    table = [(1.0 / k, ids.LOSS_DIVIDED_BY_CLASSES,
              f"divided by N * K = {n * k} instead of N = {n}: a mean over every entry - divide by the batch only")]
    if reduction == "mean":
        table.append((float(n), ids.LOSS_SUMMED, f"summed over the batch (N = {n}) - divide by N"))
    else:
        table.append((1.0 / n, ids.LOSS_AVERAGED, f"divided by the batch size N = {n} - you said it is a sum"))
    for value, hid, words in table:
        if k != 1 and abs(f - value) <= 1e-6 * abs(value):
            return type(d)(hid, d.quantity, f"your {d.quantity} is the reference times {f:.6g}: {words}",
                           d.residual, d.factor)
    return d


def diagnose_loss(name, *, logits_or_outputs, targets, quantity, got, expected, rtol, reduction) -> list:
    """The mistakes that reproduce the user's loss value or gradient, best first."""
    SL.get(name)  # a clear error for an unknown loss
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity: unknown {quantity!r}; allowed: {', '.join(QUANTITIES)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: unknown {reduction!r}; allowed: {', '.join(REDUCTIONS)}")
    a = np.asarray(logits_or_outputs, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    n, k = a.shape
    per = float(n) if reduction == "sum" else 1.0
    sizes = {"N": n, "K": k}
    with np.errstate(all="ignore"):
        found = match(_candidates(SL.get(name).name, a, y, quantity, per), quantity=quantity,
                      got=np.asarray(got, dtype=np.float64), expected=np.asarray(expected, dtype=np.float64),
                      rtol=rtol, sizes=sizes)
    return [_rename(d, k, n, reduction) for d in found]

