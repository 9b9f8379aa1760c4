"""The input generator shared by ``xfw check`` and the parity matrix of the engine
(:mod:`experiments.check.cases` and :func:`experiments.parity.data.layer_data`).

Everything is drawn from one seeded ``numpy.random.Generator`` (the seed is printed in
every check report, so a failure reproduces). The samples of a batch rotate through
three kinds, so that a batch of three or more holds each of them:

* sample ``i % 3 == 0``: standard normal with about 15% exact zeros, and exact zeros over
  the top half of every image (whole receptive fields of zeros: a bias-free convolution
  gives exact 0 pre-activations there, where ReLU's derivative is decided); a flat
  sample in a batch of several is all zeros for the same reason;
* ``i % 3 == 1``: with ``ties``, integers in {-2, ..., 2} (ties in every pooling
  window; max pooling must send the gradient to the first maximum only); otherwise like
  the first kind without the zero block;
* ``i % 3 == 2``: with ``large``, values of about +-1000 (``1000 * sign + N(0, 1)``), so
  that a softmax (or the layer before it) sees logits of +-1000; otherwise standard normal.

With ``ties`` the first kind is rounded to integers too, so that a batch of one has ties.
Upstream gradients are standard normal: a sum or a gradient of ones can hide a transpose.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from scratch import spec as S

#: How far from zero the "large" samples are: logits of +-1000 overflow a naive exp.
LARGE = 1000.0
ZERO_FRACTION = 0.15


def generator(seed) -> np.random.Generator:
    """The one generator of a check; ``seed`` an int or a sequence of ints."""
    return np.random.default_rng(seed)


def inputs(input_shape, batch: int, rng: np.random.Generator, *, ties: bool = False,
           large: bool = False) -> np.ndarray:
    """A float64 batch ``(batch, *input_shape)`` of the three kinds described above."""
    shape = (batch,) + tuple(input_shape)
    x = rng.standard_normal(shape)
    x[rng.random(shape) < ZERO_FRACTION] = 0.0
    image = len(input_shape) == 3
    for i in range(batch):  # a handful of samples: the loop is over kinds, not over pixels
        kind = i % 3
        if kind == 0:
            if image:
                x[i, :, : max(1, input_shape[1] // 2), :] = 0.0
            elif batch > 1:
                x[i] = 0.0
            if ties:
                x[i] = np.round(np.clip(x[i], -2, 2))
        elif kind == 1 and ties:
            x[i] = rng.integers(-2, 3, input_shape)
        elif kind == 2 and large:
            x[i] = LARGE * np.sign(rng.standard_normal(input_shape)) + rng.standard_normal(input_shape)
    return x


def upstream(shape, rng: np.random.Generator) -> np.ndarray:
    """A random upstream gradient of ``shape`` (standard normal, float64)."""
    return rng.standard_normal(tuple(shape))


def has_softmax(layer) -> bool:
    """Whether ``layer`` computes a softmax (standalone or fused): it gets +-1000 inputs."""
    act = layer if isinstance(layer, S.Activation) else getattr(layer, "activation", None)
    return act is not None and act.name == "softmax"


def has_ties(layer) -> bool:
    """Whether ``layer`` is decided by ties (max pooling): it gets integer inputs."""
    return isinstance(layer, S.MaxPool2D)


def logits(n: int, k: int, rng: np.random.Generator, *, large: bool = True) -> np.ndarray:
    """``(n, k)`` logits, standard normal times 3; with ``large`` sample 1 (or 0 when n == 1)
    is ``+-1000 + N(0, 1)``."""
    z = 3.0 * rng.standard_normal((n, k))
    if large:
        i = 1 if n > 1 else 0
        z[i] = LARGE * np.sign(rng.standard_normal(k)) + rng.standard_normal(k)
    return z


def targets(loss: str, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Targets of ``loss``: one-hot rows (categorical), 0/1 (binary) or standard normal (mse)."""
    if loss == "categorical_crossentropy":
        return np.eye(k)[rng.integers(0, k, n)]
    if loss == "binary_crossentropy":
        return rng.integers(0, 2, (n, k)).astype(np.float64)
    return rng.standard_normal((n, k))


def zero_bias_entry(state: dict, key: Optional[str]) -> dict:
    """``state`` with entry 0 of bias ``key`` set to exactly 0 (so that a zero block of the
    input gives exact 0 pre-activations in filter or unit 0); a new dict, the rest shared."""
    if key is None or key not in state:
        return state
    b = np.array(state[key], copy=True)
    b.reshape(-1)[0] = 0
    return {**state, key: b}
