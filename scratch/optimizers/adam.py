"""Adam (no AMSGrad) in the Keras and the torch flavour."""
from __future__ import annotations

import numpy as np

from .base import Optimizer, Rule, keras_cast, nonnegative, torch_lerp, unit, zeros_state

__all__ = ["Adam"]


# --------------------------------------------------------------------------- Keras


def _keras_update(opt, p, g, state):
    b1, b2, eps = opt.beta_1, opt.beta_2, opt.epsilon
    m, v = state["m"], state["v"]
    dt = p.dtype.type
    lr = opt._lr(p.dtype)
    t = dt(opt.iterations + 1)
    b1_power = np.power(keras_cast(b1, p.dtype), t)
    b2_power = np.power(keras_cast(b2, p.dtype), t)
    alpha = lr * np.sqrt(1 - b2_power) / (1 - b1_power)
    m[...] = m + (g - m) * (1 - b1)
    v[...] = v + (np.square(g) - v) * (1 - b2)
    return p - (m * alpha) / (np.sqrt(v) + eps)


# --------------------------------------------------------------------------- torch


def _torch_update(opt, p, g, state):
    b1, b2, eps = opt.beta_1, opt.beta_2, opt.epsilon
    m, v = state["m"], state["v"]
    lr = opt._lr(p.dtype)
    t = float(state["step"])
    m[...] = torch_lerp(m, g, 1 - b1)
    v[...] = v * b2 + (1 - b2) * g * g  # mul_(beta2).addcmul_(g, g, value=1-beta2)
    bias_correction1 = 1 - b1**t
    bias_correction2 = 1 - b2**t
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    denom = np.sqrt(v) / bias_correction2_sqrt + eps
    return p + (-step_size) * (m / denom)  # addcdiv_(m, denom, value=-step_size)


class Adam(Optimizer):
    r"""Adam (no AMSGrad).

    Keras flavour (``keras.optimizers.Adam``); ``m``, ``v`` start at 0; ``t`` is
    ``optimizer.iterations + 1``, computed in the parameter's dtype::

        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        w = w - (m * alpha) / (sqrt(v) + eps)            # eps outside, NOT bias-corrected

    where ``beta_1**t`` and ``beta_2**t`` are ``float32(beta)**t`` and ``lr`` is
    ``float32(lr)``, while ``1 - beta`` in the moment updates is exact (see
    :mod:`scratch.optimizers.base`).

    torch flavour (``torch.optim.Adam``); ``m``, ``v`` start at 0; scalars are Python
    floats::

        m = lerp(m, g, 1 - beta_1)                       # m + (1 - beta_1) * (g - m)
        v = v * beta_2 + (1 - beta_2) * g * g
        step_size = lr / (1 - beta_1**t)
        denom = sqrt(v) / (1 - beta_2**t)**0.5 + eps     # eps added to the corrected sqrt(v)
        w = w + (-step_size) * (m / denom)

    The two differ only in where ``eps`` enters: Keras's ``eps`` is the paper's
    "epsilon hat", equivalent to a torch ``eps`` of ``eps / sqrt(1 - beta_2**t)`` (larger: 32x at step 1 with beta_2 = 0.999).

    Parameters
    ----------
    learning_rate : float, optional
        Keras ``learning_rate`` (default 0.001); torch ``lr`` (default 1e-3).
    beta_1 : float, default 0.9
        Keras ``beta_1``; torch ``betas[0]``. In [0, 1).
    beta_2 : float, default 0.999
        Keras ``beta_2``; torch ``betas[1]``. In [0, 1).
    epsilon : float, optional
        Keras ``epsilon`` (default 1e-7); torch ``eps`` (default 1e-8). >= 0.
    flavor : {"keras", "torch"}, default "keras"
    lr_dtype : {"float32", "float64"}, optional
        See :class:`~scratch.optimizers.base.Optimizer`.
    """

    name = "adam"
    RULES = {"keras": Rule(zeros_state("m", "v"), _keras_update), "torch": Rule(zeros_state("m", "v"), _torch_update)}
    _DEFAULT_LR = {"keras": 0.001, "torch": 1e-3}
    _DEFAULT_EPS = {"keras": 1e-7, "torch": 1e-8}

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=None,
                 *, flavor="keras", lr_dtype=None):
        super().__init__(learning_rate, flavor=flavor, lr_dtype=lr_dtype)
        self.beta_1 = unit("Adam", "beta_1", beta_1)
        self.beta_2 = unit("Adam", "beta_2", beta_2)
        self.epsilon = nonnegative("Adam", "epsilon", self._DEFAULT_EPS[flavor] if epsilon is None else epsilon)

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
