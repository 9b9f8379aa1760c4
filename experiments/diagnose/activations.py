"""Activation-derivative hypotheses: at zero, missing, at the wrong point, of the upstream
gradient, extra.

``f'(u)`` below is the derivative formula of the activation evaluated at ``u`` (softmax:
its diagonal ``s(u)(1 - s(u))``). With ``z`` the pre-activation, ``y = f(z)`` the output
and ``dy`` the upstream gradient, the correct pre-activation gradient is ``dy * f'(z)``
(softmax: the full Jacobian-vector product). The variants:

* at zero: relu's derivative taken as 1 where ``z == 0`` (``z >= 0`` for ``z > 0``);
* missing: ``dy``;
* at the output: ``dy * f'(y)``; or the output form of the formula (``y(1 - y)``,
  ``1 - y**2``) applied to ``z``;
* of the upstream gradient: ``dy * f'(dy)``;
* extra: the derivative applied twice, or a derivative (relu, sigmoid, tanh) in a layer
  whose spec has no activation, at its output or at its input.
"""
from __future__ import annotations

import numpy as np

from scratch import layers as SLy
from scratch import spec as S

from . import ids
from .core import Candidate

IG = "input gradient"


def derivative(act: S.Activation, u: np.ndarray) -> np.ndarray:
    """``f'(u)`` element-wise (softmax: the diagonal of its Jacobian)."""
    name = act.name
    if name == "relu":
        return (u > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(u > 0, 1.0, act.negative_slope)
    if name == "sigmoid":
        s = SLy.sigmoid(u)
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(u) ** 2
    if name == "softmax":
        s = SLy.softmax(u)
        return s * (1 - s)
    return np.ones_like(u)


def output_form(act: S.Activation, u: np.ndarray):
    """The derivative written in terms of the output (``y(1 - y)``, ``1 - y**2``), evaluated at ``u``."""
    if act.name == "sigmoid":
        return u * (1 - u)
    if act.name == "tanh":
        return 1 - u * u
    return None


def _pre_activation_grads(ctx, act, z, y):
    """(id, what, fix, dz) for each variant of the layer's own activation derivative."""
    dy, name = ctx.dy, act.name
    if ctx.pre_activation_grad:  # the caller already gives dL/dz: any further factor is extra
        yield (ids.ACT_EXTRA, f"the {name} derivative applied to a gradient that already includes it",
               f"your backward receives the gradient with respect to the pre-activation - do not multiply by "
               f"the {name} derivative again", dy * derivative(act, z))
        return
    if name in ("relu", "leaky_relu"):
        yield (ids.ACT_AT_ZERO, f"the {name} derivative taken as 1 where the pre-activation is exactly 0",
               f"{name}'(0) is 0 in PyTorch and TensorFlow (the gradient does not pass where z == 0) - "
               "test z > 0, not z >= 0", dy * np.where(z == 0, 1.0, derivative(act, z)))
    yield (ids.ACT_MISSING, f"the {name} derivative left out",
           f"multiply the upstream gradient by the {name} derivative at the pre-activation before the "
           "layer's own backward", dy)
    yield (ids.ACT_AT_OUTPUT, f"the {name} derivative evaluated at the layer's output",
           f"you apply the {name} derivative to the activation's output - evaluate f'(z) at the "
           "pre-activation z (or use the output form of the formula on the output)", dy * derivative(act, y))
    alt = output_form(act, z)
    if alt is not None:
        yield (ids.ACT_AT_OUTPUT, f"the output form of the {name} derivative applied to the pre-activation",
               f"the formula in terms of the output ({'y(1 - y)' if name == 'sigmoid' else '1 - y**2'}) needs "
               "the output y, not the pre-activation - pass the output", dy * alt)
    yield (ids.ACT_OF_UPSTREAM, f"the {name} derivative evaluated at the upstream gradient",
           f"you evaluate the {name} derivative at the gradient that arrives - evaluate it at the "
           "pre-activation saved in the forward pass", dy * derivative(act, dy))
    if name != "softmax":
        yield (ids.ACT_EXTRA, f"the {name} derivative applied twice",
               f"the {name} derivative is applied in two places - apply it once", ctx.dz * derivative(act, z))


EXTRA_FIX = ("no activation runs in this layer, yet your backward multiplies by a {name} derivative - "
             "remove it (the activation's derivative belongs to the activation's own backward)")


def candidates(ctx):
    if ctx.quantity == "output":
        return
    act = ctx.activation
    run = ctx.base
    if isinstance(ctx.layer, S.Activation):
        if act is None or ctx.quantity != IG:
            return
        for hid, what, fix, dz in _pre_activation_grads(ctx, act, ctx.x, run.output):
            yield Candidate(hid, what, fix, dz)
        return
    if act is not None and run.pre is not None:
        for hid, what, fix, dz in _pre_activation_grads(ctx, act, run.pre, run.output):
            yield Candidate(hid, what, fix, run.backward_linear(dz)[ctx.quantity])
        return
    if isinstance(ctx.layer, S.Dropout):
        return
    for name in ("relu", "sigmoid", "tanh"):
        a = S.Activation(name)
        fix = EXTRA_FIX.format(name=name)
        out = run.output
        res = run.backward_linear(ctx.dz * derivative(a, out))[ctx.quantity] if out.shape == ctx.dy.shape else None
        if res is not None:
            yield Candidate(ids.ACT_EXTRA, f"a {name} derivative at the layer's output", fix, res)
        if ctx.quantity == IG:
            yield Candidate(ids.ACT_EXTRA, f"a {name} derivative at the layer's input", fix,
                            ctx.reference[IG] * derivative(a, ctx.x))


CANDIDATES = (candidates,)
