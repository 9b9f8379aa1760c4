"""Network hypotheses: mistakes that only show when layers are chained in a training step.

Quantities (keys of ``got`` / ``expected``): ``"layer i output"``, ``"layer i input
gradient"``, ``"layer i kernel gradient"``, ``"layer i bias gradient"``, ``"layer i
kernel after step"``, ``"layer i bias after step"`` (one plain SGD step of
``learning_rate``) and ``"loss"``; ``i`` is the spec index. Gradients are those of the
objective (mean loss over the batch plus ``l2 * sum(W**2)`` over kernels).

Hypotheses:

* backward-uses-updated-weights: each layer (or one layer alone) updates its weights
  during backward and then backpropagates through the updated ones;
* first-layer-not-updated: the first parametric layer keeps its weights (its gradient
  is never computed);
* batch-scaled-twice: from some layer down, gradients are divided by N once more (the
  loss gradient and a layer both divide by the batch), or the loss is;
* l2-gradient-half, l2-on-biases: the L2 term's gradient lambda*W, or applied to biases.
"""
from __future__ import annotations

import re

import numpy as np

import scratch
from scratch import losses as SL

from . import ids
from .core import Diagnosis, residual

_KEY = re.compile(r"layer (\d+) (output|input gradient|kernel gradient|bias gradient|kernel after step|"
                  r"bias after step)$")


def quantities(layers, input_shape, x, targets, loss, params, *, learning_rate=0.01, l2=0.0, mistake=None,
               below=None, dy=None) -> dict:
    """Every network quantity of one training step, under ``mistake`` (None: the reference).
    ``dy``: an upstream gradient of the last layer's output in place of a loss (no ``loss``)."""
    model = scratch.build(layers, input_shape, dtype=np.float64)
    model.load_state_dict({k: np.asarray(v, dtype=np.float64) for k, v in params.items()})
    lossf = SL.get(loss) if dy is None else None
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    ops = model.ops[:-1] if lossf is not None and lossf.fused_activation else model.ops
    out, q = x, {}
    for k, op in enumerate(model.ops):
        out = op.forward(out, False)
        if k + 1 == len(model.ops) or model.ops[k + 1].index != op.index:
            q[f"layer {op.index} output"] = out
        if k + 1 == len(ops):
            a = out
    if dy is None:
        value, g = lossf.value_and_grad(a, np.asarray(targets, dtype=np.float64))
        l2_value = l2 * sum(float(np.sum(np.asarray(v) ** 2)) for k, v in params.items() if k.endswith("kernel"))
        q["loss"] = np.asarray((value / n if mistake == "scaled" and below is None else value) + l2_value)
    else:
        g = np.asarray(dy, dtype=np.float64)
    first = min(int(k.split(".")[0]) for k in params) if params else None
    for k in range(len(ops) - 1, -1, -1):
        op = ops[k]
        last_of_layer = k + 1 == len(ops) or ops[k + 1].index != op.index
        if mistake == "scaled" and below is not None and op.index == below and last_of_layer:
            g = g / n  # this layer divides by the batch once more
        dx = op.backward(g, True)
        for name, grad in op.grads.items():
            key = f"{op.index}.{name}"
            w = model.parameters()[key]
            factor = {"kernel": 2.0, "bias": 0.0}[name] if mistake not in ("l2-half", "l2-biases") else \
                {"l2-half": {"kernel": 1.0, "bias": 0.0}, "l2-biases": {"kernel": 2.0, "bias": 2.0}}[mistake][name]
            total = grad + factor * l2 * w
            if mistake == "frozen" and op.index == first:
                total = np.zeros_like(total)
            q[f"layer {op.index} {name} gradient"] = total.copy()
            q[f"layer {op.index} {name} after step"] = w - learning_rate * total
            if mistake == "updated" and (below is None or op.index == below):
                w[...] = w - learning_rate * total
                dx = op.backward(g, True)  # passed on through the updated weights (the grads do not change)
        if k == 0 or ops[k - 1].index != op.index:
            q[f"layer {op.index} input gradient"] = dx
        g = dx
    return q


HYPOTHESES = (
    (ids.BACKWARD_USES_UPDATED_WEIGHTS, "updated", "each layer backpropagating through its weights after their update",
     "compute the gradient you pass to the layer below with the weights of the forward pass - update after "
     "the whole backward pass (or save the old weights first)"),
    (ids.FIRST_LAYER_NOT_UPDATED, "frozen", "the first layer left out of the update",
     "your backward (or update) loop stops before layer 0 - run it down to the first layer"),
    (ids.L2_GRADIENT_HALF, "l2-half", "the L2 gradient lambda * W",
     "d/dW of lambda * sum(W**2) is 2 * lambda * W"),
    (ids.L2_ON_BIASES, "l2-biases", "L2 on the biases too", "apply L2 to kernels only"),
)


def diagnose_network(layers, *, input_shape, x, targets=None, loss=None, params, got, expected, rtol,
                     learning_rate=0.01, l2=0.0, dy=None) -> list:
    """The network mistakes that reproduce every failing quantity in ``got`` (a dict), best first.

    ``params``: the canonical state dict before the step (``"i.kernel"``, ``"i.bias"``);
    ``got``/``expected``: quantity name -> canonical array (see the module docstring).
    Either ``loss`` and ``targets``, or ``dy``: the upstream gradient of the last layer's
    output (a network checked without its loss; no ``"loss"`` quantity then).
    """
    if (dy is None) == (loss is None):
        raise ValueError("diagnose_network: give either loss= and targets= or dy= (the upstream gradient)")
    for key in got:
        if key != "loss" and not _KEY.match(key):
            raise ValueError(f"quantity: unknown {key!r}; allowed: 'loss' and 'layer i <output|input gradient|"
                             "kernel gradient|bias gradient|kernel after step|bias after step>'")
    failing = [k for k in got if residual(expected[k], got[k]) > rtol]
    if not failing:
        return []
    args = (layers, input_shape, x, targets, loss, params)
    kw = dict(learning_rate=learning_rate, l2=l2, dy=dy)
    tries = [(hid, dict(mistake=m), what, fix) for hid, m, what, fix in HYPOTHESES
             if l2 or m not in ("l2-half", "l2-biases")]
    n = int(np.asarray(x).shape[0])
    updated = next(t for t in tries if t[0] == ids.BACKWARD_USES_UPDATED_WEIGHTS)
    for i in sorted({int(k.split(".")[0]) for k in params}):  # one layer alone doing it
        tries.append((updated[0], dict(mistake="updated", below=i), f"layer {i} backpropagating through its "
                      "weights after their update", updated[3]))
    for i in sorted({int(k.split()[1]) for k in got if k != "loss"} | {len(layers) - 1}, reverse=True):
        tries.append((ids.BATCH_SCALED_TWICE, dict(mistake="scaled", below=i), f"layer {i} dividing by the batch "
                      f"size N = {n} once more", "the loss already averages over the batch - do not divide "
                      "by N again in a layer's backward"))
    if dy is None:
        tries.append((ids.BATCH_SCALED_TWICE, dict(mistake="scaled", below=None),
                      f"the loss divided by N = {n} twice", "divide the summed loss by the batch size once"))
    found = {}
    with np.errstate(all="ignore"):
        for hid, opts, what, fix in tries:
            pred = quantities(*args, **kw, **opts)
            if all(residual(expected[k], pred[k]) <= rtol for k in got):
                continue  # invisible on this input
            r = max(residual(pred[k], got[k]) for k in got)
            if r <= rtol and (hid not in found or r < found[hid].residual):
                q = failing[0]
                found[hid] = Diagnosis(hid, q, f"your {q} equals the reference computed with {what}: {fix}", r)
    return sorted(found.values(), key=lambda d: d.residual)
