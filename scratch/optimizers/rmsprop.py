"""RMSprop (optionally centered and with momentum) in the Keras and the torch flavour."""
from __future__ import annotations

import numpy as np

from .base import Optimizer, Rule, boolean, nonnegative, torch_lerp, unit

__all__ = ["RMSprop"]


def _init_state(opt, p):
    """The same zero state in both flavours."""
    state = {"square_avg": np.zeros_like(p)}
    if opt.centered:
        state["grad_avg"] = np.zeros_like(p)
    if opt.momentum > 0.0:
        state["momentum_buf"] = np.zeros_like(p)
    return state


# --------------------------------------------------------------------------- Keras


def _keras_update(opt, p, g, state):
    lr = opt._lr(p.dtype)
    rho, eps, mom = opt.rho, opt.epsilon, opt.momentum
    s = state["square_avg"]
    s[...] = rho * s + (1 - rho) * np.square(g)
    if opt.centered:
        a = state["grad_avg"]
        a[...] = rho * a + (1 - rho) * g
        denominator = s - np.square(a) + eps
    else:
        denominator = s + eps
    increment = (lr * g) / np.sqrt(denominator)
    if mom > 0.0:
        v = state["momentum_buf"]
        v[...] = mom * v + increment
        return p - v
    return p - increment


# --------------------------------------------------------------------------- torch


def _torch_update(opt, p, g, state):
    lr = opt._lr(p.dtype)
    rho, eps, mom = opt.rho, opt.epsilon, opt.momentum
    s = state["square_avg"]
    s[...] = s * rho + (1 - rho) * g * g  # mul_(alpha).addcmul_(g, g, value=1-alpha)
    if opt.centered:
        a = state["grad_avg"]
        a[...] = torch_lerp(a, g, 1 - rho)
        avg = np.sqrt(s + (-1.0) * a * a)  # addcmul(a, a, value=-1).sqrt_()
    else:
        avg = np.sqrt(s)
    avg = avg + eps
    if mom > 0.0:
        b = state["momentum_buf"]
        b[...] = b * mom + 1.0 * (g / avg)  # mul_(momentum).addcdiv_(g, avg)
        return p + (-lr) * b
    return p + (-lr) * (g / avg)  # addcdiv_(g, avg, value=-lr)


class RMSprop(Optimizer):
    r"""RMSprop, optionally centered and with momentum.

    Keras flavour (``keras.optimizers.RMSprop``); ``s``, ``a``, ``v`` start at 0::

        s = rho * s + (1 - rho) * g**2
        centered:   a = rho * a + (1 - rho) * g
                    d = s - a**2 + eps
        otherwise:  d = s + eps
        inc = (lr * g) / sqrt(d)                         # eps INSIDE the sqrt
        momentum > 0:  v = momentum * v + inc;  w = w - v
        otherwise:     w = w - inc

    torch flavour (``torch.optim.RMSprop``, ``alpha`` = rho); ``s``, ``a``, ``b`` start
    at 0::

        s = s * alpha + (1 - alpha) * g * g
        centered:   a = lerp(a, g, 1 - alpha)            # a + (1 - alpha) * (g - a)
                    d = sqrt(s - a * a) + eps
        otherwise:  d = sqrt(s) + eps                    # eps OUTSIDE the sqrt
        momentum > 0:  b = b * momentum + g / d;  w = w + (-lr) * b
        otherwise:     w = w + (-lr) * (g / d)

    Parameters
    ----------
    learning_rate : float, optional
        Keras ``learning_rate`` (default 0.001); torch ``lr`` (default 0.01).
    rho : float, optional
        Keras ``rho`` (default 0.9); torch ``alpha`` (default 0.99). In [0, 1).
    momentum : float, default 0.0
        Keras ``momentum``; torch ``momentum``. In [0, 1).
    epsilon : float, optional
        Keras ``epsilon`` (default 1e-7); torch ``eps`` (default 1e-8). >= 0.
    centered : bool, default False
        Keras ``centered``; torch ``centered``.
    flavor : {"keras", "torch"}, default "keras"
    lr_dtype : {"float32", "float64"}, optional
        See :class:`~scratch.optimizers.base.Optimizer`.
    """

    name = "rmsprop"
    RULES = {"keras": Rule(_init_state, _keras_update), "torch": Rule(_init_state, _torch_update)}
    _DEFAULT_LR = {"keras": 0.001, "torch": 0.01}
    _DEFAULT_RHO = {"keras": 0.9, "torch": 0.99}
    _DEFAULT_EPS = {"keras": 1e-7, "torch": 1e-8}

    def __init__(self, learning_rate=None, rho=None, momentum=0.0, epsilon=None, centered=False,
                 *, flavor="keras", lr_dtype=None):
        super().__init__(learning_rate, flavor=flavor, lr_dtype=lr_dtype)
        self.rho = unit("RMSprop", "rho", self._DEFAULT_RHO[flavor] if rho is None else rho)
        self.momentum = unit("RMSprop", "momentum", momentum)
        self.epsilon = nonnegative("RMSprop", "epsilon", self._DEFAULT_EPS[flavor] if epsilon is None else epsilon)
        self.centered = boolean("RMSprop", "centered", centered)

    def _hyper(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}
