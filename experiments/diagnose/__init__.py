"""Naming the bug: which known mistake reproduces the user's numbers of a failing quantity.

Everything here works on canonical float64 NumPy arrays (activations NCHW or (N, F);
Conv2D kernel ``W[out, in, kh, kw]``; Dense kernel ``W[in, out]``; bias ``b[out]``) and
recomputes references with the scratch engine under each hypothesis; it never calls
user code. Public names:

* :class:`Diagnosis` - id, quantity, text (plain words and the fix), residual, factor;
* :func:`diagnose_layer`, :func:`diagnose_loss`, :func:`diagnose_optimizer`,
  :func:`diagnose_network` - the matching diagnoses, best first, ``[]`` when none fits;
* :func:`where_error_lies` - one sentence on where the error is when nothing fits;
* :func:`infer_layout` - the layouts under which a raw array equals the reference;
  :func:`candidate_layouts` - the layout strings it tries;
* :data:`IDS` - every id (documented in :mod:`experiments.diagnose.ids`).

The matching rule (:mod:`.core`): a hypothesis matches when compare's floored relative
error is within ``rtol``; one that equals the reference on this input is never claimed;
pairs are a fitted constant with any other mistake.
"""
from __future__ import annotations

import numpy as np

from . import activations, flatten, ids, layers, pooling, reverse
from .context import LayerContext
from .core import Diagnosis, match
from .engine import QUANTITIES, layer_sizes
from .ids import ALL as IDS
from .layouts import candidate_layouts, infer_layout
from .losses import diagnose_loss
from .networks import diagnose_network
from .optimizers import diagnose_optimizer
from .where import where_error_lies

__all__ = ["Diagnosis", "IDS", "candidate_layouts", "diagnose_layer", "diagnose_loss", "diagnose_network",
           "diagnose_optimizer", "ids", "infer_layout", "where_error_lies"]

#: Generic hypotheses first: a planted breakage that predicts the same numbers is dropped.
_LIBRARY = layers.CANDIDATES + activations.CANDIDATES + pooling.CANDIDATES + flatten.CANDIDATES \
    + reverse.CANDIDATES


def layer_candidates(ctx: LayerContext):
    for family in _LIBRARY:
        yield from family(ctx)


def diagnose_layer(layer, *, input_shape, x, dy, params, quantity, got, expected, rtol,
                   pre_activation_grad=False) -> list:
    """The mistakes that reproduce ``got`` (the user's ``quantity`` of ``layer``), best first.

    ``layer``: one :mod:`scratch.spec` layer; ``input_shape``: one sample's canonical shape;
    ``x``: (N, *input_shape); ``dy``: the upstream gradient as given to the user (output
    shaped; dL/d pre-activation when ``pre_activation_grad``); ``params``: {"kernel", "bias"}
    canonical (zeros for a parameter the user's layer lacks); ``quantity``: one of
    ``output``, ``input gradient``, ``kernel gradient``, ``bias gradient``; ``expected``:
    the reference's array; ``rtol``: the bound. A pair is two diagnoses, the mistake then
    ``scale``, with the same residual. ``[]`` when nothing fits.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity: unknown {quantity!r}; allowed: {', '.join(QUANTITIES)}")
    x = np.asarray(x, dtype=np.float64)
    ctx = LayerContext(layer, tuple(input_shape), x, np.asarray(dy, dtype=np.float64),
                       {k: np.asarray(v, dtype=np.float64) for k, v in (params or {}).items()},
                       quantity, bool(pre_activation_grad))
    with np.errstate(all="ignore"):
        return match(layer_candidates(ctx), quantity=quantity, got=got, expected=expected, rtol=rtol,
                     sizes=layer_sizes(layer, ctx.input_shape, ctx.n))
