"""SGD, plain, with momentum or with Nesterov momentum: one rule, both flavours.

The names ``"momentum"`` and ``"nesterov"`` of :func:`scratch.optimizers.make` are this
class with the presets of :data:`scratch.optimizers.PRESETS`.
"""
from __future__ import annotations

import numpy as np

from .base import Optimizer, Rule, boolean, keras_cast, unit

__all__ = ["SGD"]


# --------------------------------------------------------------------------- Keras


def _keras_init_state(opt, p):
    return {} if opt.momentum == 0.0 else {"buf": np.zeros_like(p)}  # velocity starts at 0


def _keras_update(opt, p, g, state):
    lr = opt._lr(p.dtype)
    if opt.momentum == 0.0:
        return p - g * lr
    m = keras_cast(opt.momentum, p.dtype)
    v = state["buf"]
    v[...] = v * m - g * lr
    if opt.nesterov:
        return p + (v * m - g * lr)
    return p + v


# --------------------------------------------------------------------------- torch


def _torch_init_state(opt, p):
    return {} if opt.momentum == 0.0 else {"buf": None}  # created from the first gradient


def _torch_update(opt, p, g, state):
    lr = opt._lr(p.dtype)
    d = g
    if opt.momentum != 0.0:
        buf = state["buf"]
        if buf is None:
            buf = state["buf"] = g.copy()
        else:
            buf[...] = buf * opt.momentum + g  # mul_(momentum).add_(g, alpha=1)
        d = g + opt.momentum * buf if opt.nesterov else buf
    return p + (-lr) * d


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum.

    Keras flavour (``keras.optimizers.SGD``), velocity ``v`` starts at 0::

        momentum == 0:  w = w - g * lr
        momentum  > 0:  v = v * momentum - g * lr
                        w = w + v                           (nesterov=False)
                        w = w + (v * momentum - g * lr)     (nesterov=True)

    torch flavour (``torch.optim.SGD``, dampening 0), buffer ``b``; on the first step
    ``b = g`` (a copy), afterwards::

        b = b * momentum + g
        w = w + (-lr) * b                                   (nesterov=False)
        w = w + (-lr) * (g + momentum * b)                  (nesterov=True)

    In the Keras flavour ``momentum`` is ``float32(momentum)`` and ``lr`` is
    ``float32(lr)`` (see :mod:`scratch.optimizers.base`). The two momentum rules give the
    same trajectory in exact arithmetic (Keras's ``v`` is ``-lr * b``); in floating point
    they round differently.

    Parameters
    ----------
    learning_rate : float, optional
        Keras ``learning_rate`` (default 0.01); torch ``lr`` (default 1e-3).
    momentum : float, default 0.0
        Keras ``momentum``; torch ``momentum``. In [0, 1).
    nesterov : bool, default False
        Keras ``nesterov``; torch ``nesterov``. Requires ``momentum > 0`` (torch
        raises otherwise; Keras silently runs plain SGD, here it is an error in both
        flavours).
    flavor : {"keras", "torch"}, default "keras"
    lr_dtype : {"float32", "float64"}, optional
        See :class:`~scratch.optimizers.base.Optimizer`.
    """

    name = "sgd"
    RULES = {"keras": Rule(_keras_init_state, _keras_update), "torch": Rule(_torch_init_state, _torch_update)}
    _DEFAULT_LR = {"keras": 0.01, "torch": 1e-3}

    def __init__(self, learning_rate=None, momentum=0.0, nesterov=False, *, flavor="keras", lr_dtype=None):
        super().__init__(learning_rate, flavor=flavor, lr_dtype=lr_dtype)
        self.momentum = unit("SGD", "momentum", momentum)
        self.nesterov = boolean("SGD", "nesterov", nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("SGD: nesterov=True requires momentum > 0")

    def _hyper(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}
