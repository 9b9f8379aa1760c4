"""Tolerances of the parity suite, in one place, keyed by dtype.

The error of one entry is ``|actual - expected| / (|expected| + floor)`` with
``floor = FLOOR * max|expected|``: a relative error that does not blow up on entries
that are zero or nearly so (a ReLU output, a gradient that cancels), because it
measures them against 0.1% of the tensor's own scale. A comparison passes when the
largest such error is at most ``rtol``.

Anchors these were set against:

* ``torch.testing.assert_close`` defaults: float64 rtol 1e-7 / atol 1e-7; float32
  rtol 1.3e-6 / atol 1e-5.
* numpy-ml's layer tests accept 3 decimals.
* float64 here: 1e-10, far tighter than either (DESIGN.md section 5). Measured worst
  over the whole matrix: see README "Parity"; optimizer trajectories use 1e-9 (issue 4)
  because 25 steps compound rounding.
* float32: the frameworks sum in other orders (oneDNN, Eigen and OpenBLAS block
  differently), so one rounding of 6e-8 per term over sums of a few hundred terms
  gives a few 1e-6; 1e-4 leaves room for the softmax and loss on top and is still
  three orders of magnitude below any of the real bugs the breakage tests plant.
"""
from __future__ import annotations

import numpy as np

#: Fraction of the tensor's largest magnitude used as the denominator floor.
FLOOR = 1e-3

#: Per-dtype bound on the floored relative error of forward outputs and gradients.
RTOL = {"float64": 1e-10, "float32": 1e-4}

#: Bound on every parameter after each of 25 optimizer steps (float64, issue 4).
TRAJECTORY_RTOL = {"float64": 1e-9, "float32": 1e-3}


def rtol_for(dtype, quantity: str = "") -> float:
    """The bound for ``dtype`` (a numpy/str dtype); ``quantity`` "param after step k" uses the trajectory bound."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in RTOL:
        raise ValueError(f"dtype: no tolerance for {name!r}; allowed: {', '.join(RTOL)}")
    table = TRAJECTORY_RTOL if quantity.startswith("param after step") else RTOL
    return table[name]
