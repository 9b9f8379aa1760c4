"""Batch order and target handling shared by all three frameworks.

Every framework's ``fit`` draws its batches from :func:`epoch_batches`, so that the
scratch engine, Keras and PyTorch see the same samples in the same order (one seeded
permutation per epoch). The checks of input shapes and data are in :mod:`scratch.checks`.
"""
from __future__ import annotations

import numpy as np


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The sample order of ``epoch`` (0-based): a permutation of ``range(n)``.

    Drawn from ``numpy.random.default_rng([seed, epoch])`` so that it depends on the
    seed and the epoch only, not on how many epochs ran before (a resumed run gets the
    same order).
    """
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n))


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, shuffle: bool = True):
    """Index arrays of the batches of one epoch; the last batch may be smaller."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if batch_size > n:
        raise ValueError(f"batch_size: {batch_size} is larger than the {n} samples of the data")
    order = epoch_permutation(n, seed, epoch) if shuffle else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def as_targets(y, num_outputs: int, dtype, *, name: str = "y") -> np.ndarray:
    """Targets as a float array of shape (N, num_outputs) in ``dtype``.

    Integer class labels of shape (N,) are one-hot encoded (and checked to lie in
    ``[0, num_outputs)``); float arrays of shape (N, num_outputs) are taken as they are.
    """
    y = np.asarray(y)
    if y.ndim == 1 and (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
        if num_outputs == 1:  # binary labels for a single sigmoid output
            if y.size and (y.min() < 0 or y.max() > 1):
                raise ValueError(f"{name}: binary labels must be 0 or 1, got range [{y.min()}, {y.max()}]")
            return y.astype(dtype).reshape(-1, 1)
        if y.size and (y.min() < 0 or y.max() >= num_outputs):
            raise ValueError(
                f"{name}: labels out of range [{y.min()}, {y.max()}]; the model has {num_outputs} outputs, "
                f"so labels must lie in [0, {num_outputs - 1}]"
            )
        out = np.zeros((y.shape[0], num_outputs), dtype=dtype)
        out[np.arange(y.shape[0]), y] = 1
        return out
    if y.ndim != 2 or y.shape[1] != num_outputs:
        raise ValueError(
            f"{name}: expected integer labels of shape (N,) or targets of shape (N, {num_outputs}), got shape {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.floating):
        y = y.astype(dtype)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name}: targets contain NaN or inf")
    return np.asarray(y, dtype=dtype)


def accuracy(outputs: np.ndarray, targets: np.ndarray) -> float:
    """Fraction of samples whose predicted class matches the target class.

    Several outputs: arg-max of both. One output (sigmoid): threshold at 0.5.
    """
    if outputs.shape[1] == 1:
        return float(np.mean((outputs[:, 0] >= 0.5) == (targets[:, 0] >= 0.5)))
    return float(np.mean(np.argmax(outputs, axis=1) == np.argmax(targets, axis=1)))
