"""The one comparison helper of the parity suite (in the spirit of tinygrad's helper_test_op).

:func:`compare` checks shape, then dtype, then values, and returns a :class:`Result`
that names the case, the quantity (``output``, ``input gradient``, ``kernel gradient``,
``bias gradient``, ``loss``, ``param after step k``...), the framework, the max absolute
and relative errors and the index where the error is largest. :func:`assert_same`
raises an ``AssertionError`` with that message; every parity test goes through it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from . import tolerances


@dataclass(frozen=True)
class Result:
    case: str
    quantity: str
    framework: str
    max_abs: float
    max_rel: float
    index: Optional[tuple]
    rtol: float
    passed: bool
    problem: str = ""  # "shape" or "dtype" mismatch text; empty when values were compared
    layer: Optional[int] = None  # spec entry the quantity belongs to, when there is one
    reference: str = "scratch"  # what "expected" came from

    def message(self) -> str:
        head = f"{self.case}: {self.quantity} ({self.framework} vs {self.reference})"
        if self.problem:
            return f"{head}: {self.problem}"
        verdict = "ok" if self.passed else "MISMATCH"
        return (f"{head}: {verdict}, max abs error {self.max_abs:.3e}, max rel error {self.max_rel:.3e} "
                f"(bound {self.rtol:.0e}) at index {self.index}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["index"] = list(self.index) if self.index is not None else None
        return d


def _to_numpy(a):
    if hasattr(a, "detach"):  # torch tensor, without importing torch here
        a = a.detach().cpu().numpy()
    elif hasattr(a, "numpy") and not isinstance(a, np.ndarray):  # tf / keras tensors
        a = a.numpy()
    return np.asarray(a)


def compare(expected, actual, *, case: str, quantity: str, framework: str, dtype=None,
            rtol: Optional[float] = None, reference: str = "scratch") -> Result:
    """Compare ``actual`` (another framework, already in scratch layout) with ``expected`` (scratch).

    ``dtype``: the dtype both must have (default: ``expected``'s); ``rtol``: default from
    :mod:`tolerances` for that dtype and quantity; ``reference``: what ``expected`` came
    from, for the message (the scratch engine unless two frameworks are compared).
    """
    e, a = _to_numpy(expected), _to_numpy(actual)
    want = np.dtype(dtype) if dtype is not None else e.dtype
    bound = rtol if rtol is not None else tolerances.rtol_for(want, quantity)
    nan = float("nan")
    if e.shape != a.shape:
        return Result(case, quantity, framework, nan, nan, None, bound, False,
                      f"shape mismatch: {reference} {e.shape}, {framework} {a.shape}", reference=reference)
    if e.dtype != want or a.dtype != want:
        return Result(case, quantity, framework, nan, nan, None, bound, False,
                      f"dtype mismatch: expected {want}, {reference} {e.dtype}, {framework} {a.dtype}",
                      reference=reference)
    if e.size == 0:
        return Result(case, quantity, framework, 0.0, 0.0, None, bound, True, reference=reference)
    e64, a64 = e.astype(np.float64), a.astype(np.float64)
    finite = np.isfinite(e64) & np.isfinite(a64)
    same_nonfinite = (e64 == a64) | (np.isnan(e64) & np.isnan(a64))
    diff = np.where(finite, np.abs(a64 - e64), np.where(same_nonfinite, 0.0, np.inf))
    scale = np.max(np.abs(e64[np.isfinite(e64)]), initial=0.0)
    floor = max(tolerances.FLOOR * scale, np.finfo(np.float64).tiny)
    rel = diff / (np.where(np.isfinite(e64), np.abs(e64), 0.0) + floor)
    worst = np.unravel_index(int(np.argmax(rel)), rel.shape)
    max_rel = float(rel[worst])
    return Result(case, quantity, framework, float(diff.max()), max_rel, tuple(int(i) for i in worst), bound,
                  bool(max_rel <= bound), reference=reference)


def assert_same(expected, actual, **kwargs) -> Result:
    """:func:`compare`, raising ``AssertionError`` with the full message on failure."""
    result = compare(expected, actual, **kwargs)
    if not result.passed:
        raise AssertionError(result.message())
    return result
