"""First-order optimizers in NumPy, each in a Keras and a torch flavour.

Keras 3 (``keras.optimizers``) and PyTorch (``torch.optim``) implement SGD, RMSprop,
Adagrad and Adam with different defaults and different arithmetic: epsilon inside or
outside the square root, Adagrad's initial accumulator 0.1 vs 0, RMSprop's rho 0.9 vs
alpha 0.99, the sign of the momentum buffer, where the Adam bias correction is applied.
Every class here takes ``flavor="keras"`` or ``flavor="torch"`` and then follows that
framework's update rule operation for operation, so that a float64 scratch run matches
the framework to rounding (see DESIGN.md section 4 and ``tests/test_optimizers.py``).
The rules were read from the installed sources: ``keras/src/optimizers/{sgd,rmsprop,
adagrad,adam}.py`` (Keras 3) and the single-tensor paths of ``torch/optim/{sgd,rmsprop,
adagrad,adam}.py`` (torch 2.13), which is the path torch takes for CPU tensors.

Conventions
-----------
* ``step(params, grads)`` updates every ``params[key]`` in place
  (``params[key][...] = ...``), so references held elsewhere (a layer's weight dict) see
  the new values. State (moments, accumulators, step counts) is kept per key.
* The dtype of each parameter is preserved; the gradient is cast to it first, as both
  frameworks do. float32 parameters are updated in float32 arithmetic.
* Weight decay is deliberately absent: the L2 penalty of DESIGN.md section 4 is added to
  the gradient by the model, not by the optimizer.
* Keras keeps ``learning_rate`` in a variable of dtype ``keras.config.floatx()``
  (float32 unless changed) and casts it to the parameter's dtype at every step, so a
  float64 Keras model with ``learning_rate=0.01`` really uses ``float64(float32(0.01))
  = 0.009999999776482582``. The Keras flavour mirrors this (``lr_dtype="float32"``);
  pass ``lr_dtype="float64"`` when Keras runs with ``keras.config.set_floatx("float64")``.
  torch keeps ``lr`` as a Python float (``lr_dtype="float64"``).
* The Keras flavour mirrors Keras 3 on the TensorFlow backend, where
  ``ops.cast(python_float, "float64")`` goes through float32 (``tf.cast`` converts the
  Python float to a float32 tensor first). Keras casts SGD's ``momentum``, Adam's
  ``beta_1``/``beta_2`` (in ``beta**t``) and Adagrad's ``initial_accumulator_value``
  this way, so the Keras flavour uses ``float32(x)`` for exactly those (see
  :func:`_keras_cast`); everything else stays exact.
* Scalars follow each framework's types: torch computes step sizes and bias
  corrections as Python floats; Keras computes them as tensors of the parameter's dtype.

Symbols in the docstrings: ``w`` parameter, ``g`` gradient, ``lr`` learning rate,
``t`` step number starting at 1, ``eps`` epsilon; all operations are element-wise.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Dict, Optional

import numpy as np

__all__ = [
    "FLAVORS",
    "OPTIMIZERS",
    "Optimizer",
    "SGD",
    "RMSprop",
    "Adagrad",
    "Adam",
    "make",
]

FLAVORS = ("keras", "torch")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam")
LR_DTYPES = ("float32", "float64")


# --------------------------------------------------------------------------- helpers


def _check_flavor(flavor) -> str:
    if flavor not in FLAVORS:
        raise ValueError(f"unknown optimizer flavor {flavor!r}; expected one of {FLAVORS}")
    return flavor


def _real(cls: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{cls}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{cls}: {name} must be finite, got {value!r}")
    return value


def _positive(cls: str, name: str, value) -> float:
    value = _real(cls, name, value)
    if value <= 0.0:
        raise ValueError(f"{cls}: {name} must be > 0, got {value!r}")
    return value


def _nonnegative(cls: str, name: str, value) -> float:
    value = _real(cls, name, value)
    if value < 0.0:
        raise ValueError(f"{cls}: {name} must be >= 0, got {value!r}")
    return value


def _unit(cls: str, name: str, value) -> float:
    """A decay factor in [0, 1)."""
    value = _real(cls, name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{cls}: {name} must be in [0, 1), got {value!r}")
    return value


def _bool(cls: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{cls}: {name} must be a bool, got {value!r}")
    return bool(value)


def _keras_cast(value: float, dtype):
    """``keras.ops.cast(value, dtype)`` of a Python float on the TensorFlow backend.

    ``tf.cast`` first converts the Python float to a *float32* tensor and only then
    casts it, so ``ops.cast(0.9, "float64")`` is ``0.8999999761581421``. Keras does this
    for SGD's ``momentum``, Adam's ``beta_1``/``beta_2`` in the bias-correction powers
    and Adagrad's ``initial_accumulator_value`` (``initializers.Constant``); the other
    Python constants (RMSprop's ``rho``, every ``epsilon``, Adam's ``1 - beta``) enter
    arithmetic directly and stay exact.
    """
    return np.dtype(dtype).type(np.float32(value))


def _torch_lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """``torch.lerp(start, end, weight)`` with a scalar weight (ATen ``Lerp.h``).

    torch switches formula at ``|weight| = 0.5`` for accuracy; the weight and ``1 -
    weight`` are computed in the tensor's (op-math) dtype.
    """
    w = start.dtype.type(weight)
    if abs(w) < 0.5:
        return start + w * (end - start)
    return end - (end - start) * (start.dtype.type(1) - w)


# --------------------------------------------------------------------------- base


class Optimizer:
    """Base class: per-key state, in-place updates, dtype preservation.

    Subclasses implement ``_init_state(p)`` and ``_update(p, g, state)``; ``_update``
    returns the new parameter value (an array of ``p``'s dtype), which ``step`` writes
    into ``p`` in place.

    Parameters
    ----------
    learning_rate : float
        Step size, finite and > 0.
    flavor : {"keras", "torch"}
        Which framework's update rule and defaults to follow.
    lr_dtype : {"float32", "float64"} or None
        Precision in which the framework stores the learning rate before casting it
        to the parameter's dtype. None: ``"float32"`` for Keras (its default
        ``floatx``), ``"float64"`` for torch (a Python float).
    """

    name: str = "optimizer"
    _DEFAULT_LR = {"keras": 0.001, "torch": 0.001}

    def __init__(self, learning_rate: Optional[float], *, flavor: str, lr_dtype: Optional[str] = None):
        self.flavor = _check_flavor(flavor)
        cls = type(self).__name__
        if learning_rate is None:
            learning_rate = self._DEFAULT_LR[flavor]
        self.learning_rate = _positive(cls, "learning_rate", learning_rate)
        if lr_dtype is None:
            lr_dtype = "float32" if flavor == "keras" else "float64"
        if lr_dtype not in LR_DTYPES:
            raise ValueError(f"{cls}: lr_dtype must be one of {LR_DTYPES}, got {lr_dtype!r}")
        self.lr_dtype = lr_dtype
        self._state: Dict[str, dict] = {}
        self.iterations = 0  # number of step() calls, Keras's `optimizer.iterations`

    # -- public API --------------------------------------------------------------

    def step(self, params: Dict[str, np.ndarray], grads: Dict[str, np.ndarray]) -> None:
        """Update every ``params[key]`` in place from ``grads[key]``.

        Parameters
        ----------
        params : dict[str, numpy.ndarray]
            Floating-point arrays, updated in place; their dtype is preserved.
        grads : dict[str, numpy.ndarray]
            Same keys and shapes as ``params``; cast to each parameter's dtype.
        """
        cls = type(self).__name__
        if set(params) != set(grads):
            raise ValueError(
                f"{cls}.step: params and grads have different keys: "
                f"only in params {sorted(set(params) - set(grads))}, "
                f"only in grads {sorted(set(grads) - set(params))}"
            )
        for key, p in params.items():
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"{cls}.step: params[{key!r}] must be a floating-point numpy array")
            g = np.asarray(grads[key])
            if g.shape != p.shape:
                raise ValueError(
                    f"{cls}.step: grads[{key!r}] has shape {g.shape}, params[{key!r}] has {p.shape}"
                )
            g = g.astype(p.dtype, copy=False)
            state = self._state.get(key)
            if state is None:
                state = self._state[key] = self._init_state(p)
                state["shape"], state["dtype"] = p.shape, p.dtype
            elif state["shape"] != p.shape or state["dtype"] != p.dtype:
                raise ValueError(
                    f"{cls}.step: params[{key!r}] changed from {state['shape']} "
                    f"{state['dtype']} to {p.shape} {p.dtype}; call reset()"
                )
            state["step"] = state.get("step", 0) + 1  # torch's per-parameter state["step"]
            p[...] = self._update(p, g, state)
        self.iterations += 1

    def reset(self) -> None:
        """Forget all state (moments, accumulators, step counts)."""
        self._state.clear()
        self.iterations = 0

    def get_config(self) -> dict:
        """The resolved hyperparameters (defaults filled in), as a plain dict."""
        return {
            "name": self.name,
            "flavor": self.flavor,
            "learning_rate": self.learning_rate,
            "lr_dtype": self.lr_dtype,
            **self._hyper(),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    # -- helpers for subclasses --------------------------------------------------

    def _lr(self, dtype):
        """The learning rate as the framework applies it to a parameter of ``dtype``.

        Keras: ``ops.cast(lr_variable, variable.dtype)``, a scalar of that dtype.
        torch: a Python float (the kernels cast it to the tensor's dtype).
        """
        lr = self.learning_rate
        if self.lr_dtype == "float32":
            lr = float(np.float32(lr))
        return np.dtype(dtype).type(lr) if self.flavor == "keras" else lr

    def _zeros(self, p):
        return np.zeros_like(p)

    def _hyper(self) -> dict:  # pragma: no cover - overridden
        return {}

    def _init_state(self, p: np.ndarray) -> dict:  # pragma: no cover - overridden
        return {}

    def _update(self, p, g, state):  # pragma: no cover - overridden
        raise NotImplementedError


# --------------------------------------------------------------------------- SGD


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
    ``float32(lr)`` (see the module notes). The two momentum rules give the same
    trajectory in exact arithmetic (Keras's ``v`` is ``-lr * b``); in floating point
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
        See :class:`Optimizer`.
    """

    name = "sgd"
    _DEFAULT_LR = {"keras": 0.01, "torch": 1e-3}

    def __init__(self, learning_rate=None, momentum=0.0, nesterov=False, *, flavor="keras", lr_dtype=None):
        super().__init__(learning_rate, flavor=flavor, lr_dtype=lr_dtype)
        self.momentum = _unit("SGD", "momentum", momentum)
        self.nesterov = _bool("SGD", "nesterov", nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("SGD: nesterov=True requires momentum > 0")

    def _hyper(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def _init_state(self, p):
        if self.momentum == 0.0:
            return {}
        # Keras: zeros; torch: created from the first gradient.
        return {"buf": self._zeros(p) if self.flavor == "keras" else None}

    def _update(self, p, g, state):
        if self.flavor == "keras":
            lr = self._lr(p.dtype)
            if self.momentum == 0.0:
                return p - g * lr
            m = _keras_cast(self.momentum, p.dtype)
            v = state["buf"]
            v[...] = v * m - g * lr
            if self.nesterov:
                return p + (v * m - g * lr)
            return p + v
        lr = self._lr(p.dtype)
        d = g
        if self.momentum != 0.0:
            buf = state["buf"]
            if buf is None:
                buf = state["buf"] = g.copy()
            else:
                buf[...] = buf * self.momentum + g  # mul_(momentum).add_(g, alpha=1)
            d = g + self.momentum * buf if self.nesterov else buf
        return p + (-lr) * d


# --------------------------------------------------------------------------- RMSprop


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
        See :class:`Optimizer`.
    """

    name = "rmsprop"
    _DEFAULT_LR = {"keras": 0.001, "torch": 0.01}
    _DEFAULT_RHO = {"keras": 0.9, "torch": 0.99}
    _DEFAULT_EPS = {"keras": 1e-7, "torch": 1e-8}

    def __init__(self, learning_rate=None, rho=None, momentum=0.0, epsilon=None, centered=False,
                 *, flavor="keras", lr_dtype=None):
        super().__init__(learning_rate, flavor=flavor, lr_dtype=lr_dtype)
        self.rho = _unit("RMSprop", "rho", self._DEFAULT_RHO[flavor] if rho is None else rho)
        self.momentum = _unit("RMSprop", "momentum", momentum)
        self.epsilon = _nonnegative("RMSprop", "epsilon", self._DEFAULT_EPS[flavor] if epsilon is None else epsilon)
        self.centered = _bool("RMSprop", "centered", centered)

    def _hyper(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered}

    def _init_state(self, p):
        state = {"square_avg": self._zeros(p)}
        if self.centered:
            state["grad_avg"] = self._zeros(p)
        if self.momentum > 0.0:
            state["momentum_buf"] = self._zeros(p)
        return state

    def _update(self, p, g, state):
        lr = self._lr(p.dtype)
        rho, eps, mom = self.rho, self.epsilon, self.momentum
        s = state["square_avg"]
        if self.flavor == "keras":
            s[...] = rho * s + (1 - rho) * np.square(g)
            if self.centered:
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
        s[...] = s * rho + (1 - rho) * g * g  # mul_(alpha).addcmul_(g, g, value=1-alpha)
        if self.centered:
            a = state["grad_avg"]
            a[...] = _torch_lerp(a, g, 1 - rho)
            avg = np.sqrt(s + (-1.0) * a * a)  # addcmul(a, a, value=-1).sqrt_()
        else:
            avg = np.sqrt(s)
        avg = avg + eps
        if mom > 0.0:
            b = state["momentum_buf"]
            b[...] = b * mom + 1.0 * (g / avg)  # mul_(momentum).addcdiv_(g, avg)
            return p + (-lr) * b
        return p + (-lr) * (g / avg)  # addcdiv_(g, avg, value=-lr)


# --------------------------------------------------------------------------- Adagrad


class Adagrad(Optimizer):
    r"""Adagrad.

    Keras flavour (``keras.optimizers.Adagrad``); ``G`` starts at
    ``initial_accumulator_value``::

        G = G + g**2
        w = w - (lr * g) / sqrt(G + eps)                 # eps INSIDE the sqrt

    (Keras starts ``G`` at ``float32(initial_accumulator_value)`` and uses
    ``float32(lr)``; see the module notes.)

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
        See :class:`Optimizer`.
    """

    name = "adagrad"
    _DEFAULT_LR = {"keras": 0.001, "torch": 0.01}
    _DEFAULT_INIT = {"keras": 0.1, "torch": 0.0}
    _DEFAULT_EPS = {"keras": 1e-7, "torch": 1e-10}

    def __init__(self, learning_rate=None, initial_accumulator_value=None, epsilon=None,
                 *, flavor="keras", lr_dtype=None):
        super().__init__(learning_rate, flavor=flavor, lr_dtype=lr_dtype)
        init = self._DEFAULT_INIT[flavor] if initial_accumulator_value is None else initial_accumulator_value
        self.initial_accumulator_value = _nonnegative("Adagrad", "initial_accumulator_value", init)
        self.epsilon = _nonnegative("Adagrad", "epsilon", self._DEFAULT_EPS[flavor] if epsilon is None else epsilon)

    def _hyper(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}

    def _init_state(self, p):
        init = self.initial_accumulator_value
        if self.flavor == "keras":  # initializers.Constant: ops.cast(value) * ones
            init = _keras_cast(init, p.dtype)
        return {"sum": np.full_like(p, init)}

    def _update(self, p, g, state):
        lr = self._lr(p.dtype)
        G = state["sum"]
        if self.flavor == "keras":
            G[...] = G + np.square(g)
            return p - (lr * g) / np.sqrt(G + self.epsilon)
        G[...] = G + 1.0 * g * g  # addcmul_(g, g, value=1)
        std = np.sqrt(G) + self.epsilon
        return p + (-lr) * (g / std)  # addcdiv_(g, std, value=-clr), clr = lr


# --------------------------------------------------------------------------- Adam


class Adam(Optimizer):
    r"""Adam (no AMSGrad).

    Keras flavour (``keras.optimizers.Adam``); ``m``, ``v`` start at 0; ``t`` is
    ``optimizer.iterations + 1``, computed in the parameter's dtype::

        alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        w = w - (m * alpha) / (sqrt(v) + eps)            # eps outside, NOT bias-corrected

    where ``beta_1**t`` and ``beta_2**t`` are ``float32(beta)**t`` and ``lr`` is
    ``float32(lr)``, while ``1 - beta`` in the moment updates is exact (see the
    module notes).

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
        See :class:`Optimizer`.
    """

    name = "adam"
    _DEFAULT_LR = {"keras": 0.001, "torch": 1e-3}
    _DEFAULT_EPS = {"keras": 1e-7, "torch": 1e-8}

    def __init__(self, learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=None,
                 *, flavor="keras", lr_dtype=None):
        super().__init__(learning_rate, flavor=flavor, lr_dtype=lr_dtype)
        self.beta_1 = _unit("Adam", "beta_1", beta_1)
        self.beta_2 = _unit("Adam", "beta_2", beta_2)
        self.epsilon = _nonnegative("Adam", "epsilon", self._DEFAULT_EPS[flavor] if epsilon is None else epsilon)

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    def _init_state(self, p):
        return {"m": self._zeros(p), "v": self._zeros(p)}

    def _update(self, p, g, state):
        b1, b2, eps = self.beta_1, self.beta_2, self.epsilon
        m, v = state["m"], state["v"]
        if self.flavor == "keras":
            dt = p.dtype.type
            lr = self._lr(p.dtype)
            t = dt(self.iterations + 1)
            b1_power = np.power(_keras_cast(b1, p.dtype), t)
            b2_power = np.power(_keras_cast(b2, p.dtype), t)
            alpha = lr * np.sqrt(1 - b2_power) / (1 - b1_power)
            m[...] = m + (g - m) * (1 - b1)
            v[...] = v + (np.square(g) - v) * (1 - b2)
            return p - (m * alpha) / (np.sqrt(v) + eps)
        lr = self._lr(p.dtype)
        t = float(state["step"])
        m[...] = _torch_lerp(m, g, 1 - b1)
        v[...] = v * b2 + (1 - b2) * g * g  # mul_(beta2).addcmul_(g, g, value=1-beta2)
        bias_correction1 = 1 - b1**t
        bias_correction2 = 1 - b2**t
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        denom = np.sqrt(v) / bias_correction2_sqrt + eps
        return p + (-step_size) * (m / denom)  # addcdiv_(m, denom, value=-step_size)


# --------------------------------------------------------------------------- factory

_CLASSES = {"sgd": SGD, "momentum": SGD, "nesterov": SGD, "rmsprop": RMSprop, "adagrad": Adagrad, "adam": Adam}
_PRESETS = {"momentum": {"momentum": 0.9}, "nesterov": {"momentum": 0.9, "nesterov": True}}


def make(name: str, learning_rate: float, *, flavor: str = "keras", **hyper) -> Optimizer:
    """Build an optimizer by name.

    Parameters
    ----------
    name : str
        One of :data:`OPTIMIZERS`. ``"momentum"`` is ``SGD(momentum=0.9)`` and
        ``"nesterov"`` is ``SGD(momentum=0.9, nesterov=True)``, unless ``hyper``
        overrides them.
    learning_rate : float
        Finite and > 0.
    flavor : {"keras", "torch"}
        Which framework's rule and defaults to follow.
    **hyper
        Further keyword arguments of the class (``momentum``, ``rho``, ``epsilon``,
        ``centered``, ``initial_accumulator_value``, ``beta_1``, ``beta_2``,
        ``nesterov``, ``lr_dtype``); ``None`` means the flavour's default.

    Raises
    ------
    ValueError
        Unknown name or flavour (the message lists the allowed ones), an invalid
        hyperparameter, or one the optimizer does not take.
    """
    if name not in _CLASSES:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    _check_flavor(flavor)
    if learning_rate is None:
        raise ValueError(f"{name}: learning_rate must be given (finite and > 0)")
    cls = _CLASSES[name]
    kwargs = {**_PRESETS.get(name, {}), **hyper}
    try:
        return cls(learning_rate, flavor=flavor, **kwargs)
    except TypeError as exc:  # an argument the class does not take
        raise ValueError(f"{name}: invalid hyperparameter(s) {sorted(hyper)}: {exc}") from None
