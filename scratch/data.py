"""Batch order and target handling shared by all three frameworks.

Every framework's ``fit`` draws its batches from :func:`epoch_batches`, so that the
scratch engine, Keras and PyTorch see the same samples in the same order (DESIGN.md
section 4: one seeded permutation per epoch).
"""
from __future__ import annotations

import numpy as np


def check_input_shape(input_shape) -> tuple:
    """``input_shape`` as a tuple of ints, ``(C, H, W)`` or ``(F,)`` (without the batch axis)."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape: expected a tuple such as (1, 8, 8), got {input_shape!r}") from None
    if not shape or any(d <= 0 for d in shape) or len(shape) not in (1, 3):
        raise ValueError(f"input_shape: expected (C, H, W) or (F,) of positive sizes, got {input_shape!r}")
    return shape


def check_input(x, input_shape: tuple, dtype, name: str = "x", owner: str = "model") -> np.ndarray:
    """Check canonical data for a model of one-sample shape ``input_shape`` and ``dtype``.

    The same checks in every framework: a NumPy array of rank ``1 + len(input_shape)``
    (NCHW or (N, F)), the right shape (with a transpose hint when it looks channels-last),
    exactly ``dtype``, at least one sample, no NaN or inf. Returns ``x`` unchanged.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    input_shape = tuple(input_shape)
    expected = ("N",) + input_shape
    if x.ndim != len(expected):
        raise ValueError(f"{name}: expected rank {len(expected)} input of shape {expected} (NCHW), got shape {x.shape}")
    if x.shape[1:] != input_shape:
        what = "channels" if len(input_shape) == 3 and x.shape[1] != input_shape[0] else "shape"
        hint = ""
        if len(input_shape) == 3 and x.shape[-1] == input_shape[0] and x.shape[1:3] == input_shape[1:]:
            hint = "; the data looks channels-last (NHWC): transpose it with x.transpose(0, 3, 1, 2)"
        raise ValueError(f"{name}: {what} mismatch, expected {expected}, got {x.shape}{hint}")
    dtype = np.dtype(dtype)
    if x.dtype != dtype:
        raise TypeError(f"{name}: dtype {x.dtype} does not match the {owner}'s {dtype}; "
                        f"cast it with x.astype(np.{dtype.name})")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: contains NaN or inf")
    return x


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
