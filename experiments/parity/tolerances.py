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
* float64 here: 1e-10, far tighter than either. Optimizer
  trajectories use 1e-9 because 25 steps compound rounding.
* float32 here: 1e-3, set from measurement (below): the frameworks sum in other orders
  than NumPy's BLAS (oneDNN, Eigen and OpenBLAS block differently), and a gradient that is a
  sum of a few hundred products which cancel (a conv kernel gradient sums over batch x
  output pixels) keeps an absolute error of about n * 6e-8 * |term| while the entry itself
  is small. 1e-3 is still 60x below the smallest error of a planted bug in ``breakages.py``
  (6e-2: L2 applied to biases; the others are 0.9 to 1e3 relative).

Measured worst errors (``xfw parity``, the whole matrix: layers with exact zeros, ties and
+-1000 inputs, losses on +-1000 logits, the three registered architectures with L2 layer
by layer, training-time dropout, and the trajectories of every optimizer and variant;
this machine, numpy OpenBLAS, torch 2.13 CPU, TensorFlow 2.21 with oneDNN):

* float64: 3.3e-12 (the kernel gradient of the categorical cross-entropy case, whose
  logits reach +-1000, Keras); trajectories after 25 steps: 7.4e-13 (RMSprop with
  momentum, Keras). The float64 bound is 30x above the first, the trajectory bound 1300x.
* float32: 4.4e-4 (the same loss case's kernel gradient, Keras; L2 as torch weight decay
  after 3 steps: 4.3e-4). The float32 bound is 2.3x above it. torch and Keras against
  each other (no scratch) differ by up to 1.2e-4 (lenet, layer 5 output): the same size,
  so this is summation order, not a bug on either side.
"""
from __future__ import annotations

import numpy as np

#: Fraction of the tensor's largest magnitude used as the denominator floor.
FLOOR = 1e-3

#: Per-dtype bound on the floored relative error of forward outputs and gradients.
RTOL = {"float64": 1e-10, "float32": 1e-3}

#: Bound on every parameter after each of 25 optimizer steps (float64).
TRAJECTORY_RTOL = {"float64": 1e-9, "float32": 1e-3}


def rtol_for(dtype, quantity: str = "") -> float:
    """The bound for ``dtype`` (a numpy/str dtype); ``quantity`` "param after step k" uses the trajectory bound."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if name not in RTOL:
        raise ValueError(f"dtype: no tolerance for {name!r}; allowed: {', '.join(RTOL)}")
    table = TRAJECTORY_RTOL if quantity.startswith("param after step") else RTOL
    return table[name]
