"""The input checks every framework shares: dtype, seed, L2 factor, input shape, data.

One definition each, so that a bad value gets the same one-line message from the scratch
engine, ``keras_models`` and ``torch_models``. Every check returns the value in its
normal form (a NumPy dtype, an int, a float, a tuple, the array) or raises a
``TypeError``/``ValueError`` naming the argument and what is allowed.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["DTYPE_NAMES", "FLOAT_DTYPES", "check_dtype", "check_input", "check_input_shape", "check_l2", "check_seed"]

#: The floating-point dtypes a model may have.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: Their names, as options and messages spell them.
DTYPE_NAMES = tuple(dt.name for dt in FLOAT_DTYPES)


def check_dtype(dtype) -> np.dtype:
    """``dtype`` (any NumPy spelling: ``"float64"``, ``np.float32``, ...) as a NumPy dtype
    of :data:`FLOAT_DTYPES`; otherwise a TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    # `is None` first: NumPy compares a dtype equal to None (None means float64).
    if dt is None or dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype: {dtype!r} is not supported; allowed: {', '.join(DTYPE_NAMES)}")
    return dt


def check_seed(seed, *, allow_none: bool = False):
    """``seed`` as a non-negative int (``None`` passes through when ``allow_none``)."""
    if allow_none and seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        allowed = "None or a non-negative int" if allow_none else "a non-negative int"
        raise ValueError(f"seed: expected {allowed}, got {seed!r}")
    return int(seed)


def check_l2(l2) -> float:
    """The L2 factor (Keras's ``l2(lambda)``) as a float, finite and >= 0."""
    if isinstance(l2, bool) or not isinstance(l2, (int, float, np.floating)) or not math.isfinite(l2) or l2 < 0:
        raise ValueError(f"l2: expected a finite number >= 0, got {l2!r}")
    return float(l2)


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
    ``name`` and ``owner`` ("model", "trainer") only word the messages.
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
