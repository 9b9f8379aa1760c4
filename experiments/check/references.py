"""References of the checks: spec-built torch and Keras in float64, and the frameworks' own
losses and optimizers, with the user's weights. Everything returned is canonical float64.

* layers: :func:`layer_trace` through :func:`experiments.parity.engines.make` (built models
  are cached there, a trace only loads the weights);
* losses: :func:`loss_value_and_grad`, the framework's loss function on logits (fused,
  as the parity suite uses them) or, on outputs, its elementary ops differentiated by
  its autograd (Keras's probability losses clip and renormalise their input, which
  changes the gradient by ~1e-7 and along the simplex, so they are not the reference);
* optimizers: :func:`optimizer_trajectory`, ``torch.optim`` and ``keras.optimizers`` built
  by the projects' ``make_optimizer`` and stepped on the given gradients.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from experiments.parity import engines
from scratch import spec as S

FRAMEWORKS = ("torch", "keras")
DTYPE = "float64"


def available():
    """(frameworks that can run here, {skipped framework: reason})."""
    reasons = {fw: engines.skip_reason(fw) for fw in FRAMEWORKS}
    return [fw for fw, why in reasons.items() if not why], {fw: why for fw, why in reasons.items() if why}


def _state(params: dict) -> dict:
    return {f"0.{k}": v for k, v in params.items()}


def layer_trace(fw: str, layer, input_shape, params: dict, x, dy, *, pre_activation_grad: bool = False):
    """``(output, input gradient, {"kernel": ..., "bias": ...})`` of one spec layer in ``fw``.

    ``params``: canonical kernel and bias (every parameter of the spec layer, zeros for
    one the user's layer lacks). ``dy`` is the upstream gradient; with
    ``pre_activation_grad`` it is taken as the gradient with respect to the layer's
    pre-activation, so the gradients come from the layer without its activation.
    """
    engine = engines.make(fw)
    state = _state(params)
    t = engine.trace((layer,), tuple(input_shape), DTYPE, state, x, dy)
    out = t.outputs[-1]
    if pre_activation_grad and getattr(layer, "activation", None) is not None:
        t = engine.trace((dataclasses.replace(layer, activation=None),), tuple(input_shape), DTYPE, state, x, dy)
    grads = {k.split(".", 1)[1]: v for k, v in t.param_grads.items()}
    return out, t.input_grad, grads


def network_trace(fw: str, layers, input_shape, state: dict, x, dy):
    """The :class:`~experiments.parity.engines.Trace` of a whole spec network in ``fw``."""
    return engines.make(fw).trace(tuple(layers), tuple(input_shape), DTYPE, state, x, dy)


# --------------------------------------------------------------------------- losses
LOSSES = ("categorical_crossentropy", "binary_crossentropy", "mse")


def _torch_loss(loss, a, y, wrt):
    import torch
    import torch.nn.functional as F

    at = torch.from_numpy(np.array(a, dtype=np.float64)).requires_grad_(True)
    yt = torch.from_numpy(np.array(y, dtype=np.float64))
    if loss == "categorical_crossentropy":
        value = F.cross_entropy(at, yt) if wrt == "logits" else -(yt * torch.log(at)).sum(dim=1).mean()
    elif loss == "binary_crossentropy":
        value = (F.binary_cross_entropy_with_logits(at, yt) if wrt == "logits"
                 else -(yt * torch.log(at) + (1 - yt) * torch.log1p(-at)).mean())
    else:
        value = F.mse_loss(at, yt)
    (g,) = torch.autograd.grad(value, [at])
    return float(value.detach()), g.numpy().copy()


def _keras_loss(loss, a, y, wrt):
    engines.make("keras")  # imports Keras the project's way (torch first, TensorFlow backend)
    import keras
    import tensorflow as tf

    at = tf.constant(np.array(a, dtype=np.float64))
    yt = tf.constant(np.array(y, dtype=np.float64))
    ops = keras.ops
    with tf.GradientTape() as tape:
        tape.watch(at)
        if loss == "categorical_crossentropy":
            per = (keras.losses.categorical_crossentropy(yt, at, from_logits=True) if wrt == "logits"
                   else -ops.sum(yt * ops.log(at), axis=1))
        elif loss == "binary_crossentropy":
            per = (keras.losses.binary_crossentropy(yt, at, from_logits=True) if wrt == "logits"
                   else -ops.mean(yt * ops.log(at) + (1 - yt) * ops.log1p(-at), axis=1))
        else:
            per = keras.losses.mean_squared_error(yt, at)
        value = ops.mean(per)
    g = tape.gradient(value, at)
    return float(np.asarray(value)), np.asarray(g).copy()


def loss_value_and_grad(fw: str, loss: str, a, y, *, wrt: str, reduction: str):
    """``(value, gradient)`` of ``loss`` on ``a`` (logits or outputs, ``(N, K)``) and targets ``y``.

    The per-sample loss is Keras's (categorical: summed over classes; binary and mse:
    averaged over outputs); ``reduction`` ``"mean"`` averages it over the batch, ``"sum"``
    adds it up (both the value and the gradient are then N times the mean's).
    """
    value, grad = (_torch_loss if fw == "torch" else _keras_loss)(loss, a, y, wrt)
    if reduction == "sum":
        n = np.shape(a)[0]
        value, grad = value * n, grad * n
    return value, grad


# --------------------------------------------------------------------------- optimizers
#: Keras casts these Python floats through float32 (``ops.cast`` on the TensorFlow
#: backend); the user's float64 code uses them exactly, so the reference gets them as
#: float64 scalars, which ``ops.cast`` keeps exact. The rule is Keras's all the same.
_KERAS_EXACT = ("momentum", "beta_1", "beta_2", "initial_accumulator_value")


def optimizer_trajectory(fw: str, name: str, learning_rate: float, hyper: dict, params0: dict, grads: list):
    """The parameters after each step of ``fw``'s native optimizer ``name``: a list of dicts
    (one per entry of ``grads``, a list of gradient dicts), float64 copies."""
    if fw == "torch":
        import torch

        import torch_models

        ts = {k: torch.nn.Parameter(torch.from_numpy(np.array(v, dtype=np.float64))) for k, v in params0.items()}
        opt = torch_models.make_optimizer(name, list(ts.values()), learning_rate, **hyper)
        out = []
        for g in grads:
            for k, p in ts.items():
                p.grad = torch.from_numpy(np.array(g[k], dtype=np.float64))
            opt.step()
            out.append({k: p.detach().numpy().copy() for k, p in ts.items()})
        return out
    engines.make("keras")
    import keras

    import keras_models

    opt = keras_models.make_optimizer(name, learning_rate, dtype=DTYPE, **hyper)
    for attr in _KERAS_EXACT:
        if isinstance(getattr(opt, attr, None), float):
            setattr(opt, attr, np.float64(getattr(opt, attr)))
    vs = {k: keras.Variable(np.array(v, dtype=np.float64), dtype=DTYPE, name=f"p_{i}")
          for i, (k, v) in enumerate(params0.items())}
    out = []
    for g in grads:
        opt.apply_gradients([(np.array(g[k], dtype=np.float64), v) for k, v in vs.items()])
        out.append({k: np.array(v.numpy(), copy=True) for k, v in vs.items()})
    return out


def spec_params(layer, input_shape) -> dict:
    """Canonical shapes of the parameters of ``layer`` on ``input_shape`` (``{}`` for none)."""
    if isinstance(layer, S.Conv2D):
        kh, kw = layer.kernel_size
        return {"kernel": (layer.filters, input_shape[0], kh, kw), "bias": (layer.filters,)}
    if isinstance(layer, S.Dense):
        return {"kernel": (input_shape[0], layer.units), "bias": (layer.units,)}
    return {}
