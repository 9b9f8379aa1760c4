"""The cases of a layer check, drawn by the shared generator :mod:`experiments.inputs`
(exact zeros, ties for max pooling, +-1000 for a softmax; see there). Its public names are
re-exported here for the checks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np

from experiments.inputs import (LARGE, generator, has_softmax, has_ties, inputs, logits, targets,  # noqa: F401
                                upstream, zero_bias_entry)

#: Batch sizes of a layer check: one sample, and one of each kind of sample.
BATCHES = (1, 3)


@dataclass(frozen=True)
class Case:
    """One batch of a check: canonical input ``x`` and upstream gradient ``dy``."""

    name: str
    x: np.ndarray
    dy: np.ndarray


def describe(x: np.ndarray, *, ties: bool, large: bool) -> str:
    """``"batch 3: exact zeros, ties, +-1000"``: what a case holds."""
    parts = []
    if (x == 0).any():
        parts.append("exact zeros")
    if ties and x.shape[0] >= 1:
        parts.append("ties")
    if large and x.shape[0] >= 3:
        parts.append(f"+-{LARGE:g}")
    return f"batch {x.shape[0]}" + (f" ({', '.join(parts)})" if parts else "")


def layer_cases(layer, input_shape, output_shape, seed, batches=BATCHES) -> List[Case]:
    """The cases of a layer check: one per batch size, each with its upstream gradient."""
    rng = generator(seed)
    ties, large = has_ties(layer), has_softmax(layer)
    out = []
    for b in batches:
        x = inputs(input_shape, b, rng, ties=ties, large=large)
        out.append(Case(describe(x, ties=ties, large=large), x, upstream((b,) + tuple(output_shape), rng)))
    return out
