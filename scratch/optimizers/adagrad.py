"""Adagrad in the Keras and the torch flavour."""
from __future__ import annotations

import numpy as np

from .base import Optimizer, Rule, keras_cast, nonnegative

__all__ = ["Adagrad"]


# --------------------------------------------------------------------------- Keras


def _keras_init_state(opt, p):
    # initializers.Constant: ops.cast(value) * ones, the cast going through float32.
    return {"sum": np.full_like(p, keras_cast(opt.initial_accumulator_value, p.dtype))}


def _keras_update(opt, p, g, state):
    lr = opt._lr(p.dtype)
    G = state["sum"]
    G[...] = G + np.square(g)
    return p - (lr * g) / np.sqrt(G + opt.epsilon)


# --------------------------------------------------------------------------- torch


def _torch_init_state(opt, p):
    return {"sum": np.full_like(p, opt.initial_accumulator_value)}


def _torch_update(opt, p, g, state):
    lr = opt._lr(p.dtype)
    G = state["sum"]
    G[...] = G + 1.0 * g * g  # addcmul_(g, g, value=1)
    std = np.sqrt(G) + opt.epsilon
    return p + (-lr) * (g / std)  # addcdiv_(g, std, value=-clr), clr = lr


class Adagrad(Optimizer):
    r"""Adagrad.

    Keras flavour (``keras.optimizers.Adagrad``); ``G`` starts at
    ``initial_accumulator_value``::

        G = G + g**2
        w = w - (lr * g) / sqrt(G + eps)                 # eps INSIDE the sqrt

    (Keras starts ``G`` at ``float32(initial_accumulator_value)`` and uses
    ``float32(lr)``; see :mod:`scratch.optimizers.base`.)

    torch flavour (``torch.optim.Adagrad``, ``lr_decay`` 0); ``G`` starts at
    ``initial_accumulator_value``::

        G = G + 1 * g * g
        w = w + (-lr) * (g / (sqrt(G) + eps))            # eps OUTSIDE the sqrt

    Parameters
    ----------
    learning_rate : float, optional
        Keras ``learning_rate`` (default 0.001); torch ``lr`` (default 0.01).
    initial_accumulator_value : float, optional
        Keras ``initial_accumulator_value`` (default 0.1); torch
        ``initial_accumulator_value`` (default 0). >= 0.
    epsilon : float, optional
        Keras ``epsilon`` (default 1e-7); torch ``eps`` (default 1e-10). >= 0.
    flavor : {"keras", "torch"}, default "keras"
    lr_dtype : {"float32", "float64"}, optional
        See :class:`~scratch.optimizers.base.Optimizer`.
    """

    name = "adagrad"
    RULES = {"keras": Rule(_keras_init_state, _keras_update), "torch": Rule(_torch_init_state, _torch_update)}
    _DEFAULT_LR = {"keras": 0.001, "torch": 0.01}
    _DEFAULT_INIT = {"keras": 0.1, "torch": 0.0}
    _DEFAULT_EPS = {"keras": 1e-7, "torch": 1e-10}

    def __init__(self, learning_rate=None, initial_accumulator_value=None, epsilon=None,
                 *, flavor="keras", lr_dtype=None):
        super().__init__(learning_rate, flavor=flavor, lr_dtype=lr_dtype)
        init = self._DEFAULT_INIT[flavor] if initial_accumulator_value is None else initial_accumulator_value
        self.initial_accumulator_value = nonnegative("Adagrad", "initial_accumulator_value", init)
        self.epsilon = nonnegative("Adagrad", "epsilon", self._DEFAULT_EPS[flavor] if epsilon is None else epsilon)

    def _hyper(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}
