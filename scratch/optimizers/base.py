"""The shared base of the optimizers: per-key state, in-place steps, the two flavours.

Keras 3 (``keras.optimizers``) and PyTorch (``torch.optim``) implement SGD, RMSprop,
Adagrad and Adam with different defaults and different arithmetic: epsilon inside or
outside the square root, Adagrad's initial accumulator 0.1 vs 0, RMSprop's rho 0.9 vs
alpha 0.99, the sign of the momentum buffer, where the Adam bias correction is applied.
Every optimizer takes ``flavor="keras"`` or ``flavor="torch"`` and then follows that
framework's update rule operation for operation, so that a float64 scratch run matches
the framework to rounding (see docs/DESIGN.md, 'Optimizer flavours', and
``tests/test_optimizers.py``). The rules were read from the installed sources:
``keras/src/optimizers/{sgd,rmsprop,adagrad,adam}.py`` (Keras 3) and the single-tensor
paths of ``torch/optim/{sgd,rmsprop,adagrad,adam}.py`` (torch 2.13), which is the path
torch takes for CPU tensors.

Each optimizer module holds one :class:`Rule` per flavour (its state and its update,
written as that framework writes them); the optimizer picks its rule once, when it is
constructed, and never branches on the flavour inside an update.

Conventions
-----------
* ``step(params, grads)`` updates every ``params[key]`` in place
  (``params[key][...] = ...``), so references held elsewhere (a layer's weight dict) see
  the new values. State (moments, accumulators, step counts) is kept per key.
* The dtype of each parameter is preserved; the gradient is cast to it first, as both
  frameworks do. float32 parameters are updated in float32 arithmetic.
* Weight decay is deliberately absent: the L2 penalty (docs/DESIGN.md, 'The objective
  and L2') is added to the gradient by the model, not by the optimizer.
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
  :func:`keras_cast`); everything else stays exact.
* Scalars follow each framework's types: torch computes step sizes and bias
  corrections as Python floats; Keras computes them as tensors of the parameter's dtype.

Symbols in the docstrings: ``w`` parameter, ``g`` gradient, ``lr`` learning rate,
``t`` step number starting at 1, ``eps`` epsilon; all operations are element-wise.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Callable, Dict, Mapping, NamedTuple, Optional

import numpy as np

__all__ = [
    "FLAVORS", "LR_DTYPES", "Optimizer", "Rule", "boolean", "check_flavor", "keras_cast", "nonnegative",
    "positive", "torch_lerp", "torch_scalar", "unit", "zeros_state",
]

FLAVORS = ("keras", "torch")
LR_DTYPES = ("float32", "float64")


# --------------------------------------------------------------------------- checks


def check_flavor(flavor) -> str:
    """``flavor`` if it is one of :data:`FLAVORS`, else a ValueError listing them."""
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


def positive(cls: str, name: str, value) -> float:
    """``value`` as a float, finite and > 0 (the error names ``cls`` and ``name``)."""
    value = _real(cls, name, value)
    if value <= 0.0:
        raise ValueError(f"{cls}: {name} must be > 0, got {value!r}")
    return value


def nonnegative(cls: str, name: str, value) -> float:
    """``value`` as a float, finite and >= 0."""
    value = _real(cls, name, value)
    if value < 0.0:
        raise ValueError(f"{cls}: {name} must be >= 0, got {value!r}")
    return value


def unit(cls: str, name: str, value) -> float:
    """A decay factor in [0, 1)."""
    value = _real(cls, name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{cls}: {name} must be in [0, 1), got {value!r}")
    return value


def boolean(cls: str, name: str, value) -> bool:
    """``value`` if it is a Python or NumPy bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{cls}: {name} must be a bool, got {value!r}")
    return bool(value)


# --------------------------------------------------------------------------- arithmetic


def keras_cast(value: float, dtype):
    """``keras.ops.cast(value, dtype)`` of a Python float on the TensorFlow backend.

    ``tf.cast`` first converts the Python float to a *float32* tensor and only then
    casts it, so ``ops.cast(0.9, "float64")`` is ``0.8999999761581421``. Keras does this
    for SGD's ``momentum``, Adam's ``beta_1``/``beta_2`` in the bias-correction powers
    and Adagrad's ``initial_accumulator_value`` (``initializers.Constant``); the other
    Python constants (RMSprop's ``rho``, every ``epsilon``, Adam's ``1 - beta``) enter
    arithmetic directly and stay exact.
    """
    return np.dtype(dtype).type(np.float32(value))


def torch_lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """``torch.lerp(start, end, weight)`` with a scalar weight (ATen ``Lerp.h``).

    torch switches formula at ``|weight| = 0.5`` for accuracy; the weight and ``1 -
    weight`` are computed in the tensor's (op-math) dtype.
    """
    w = start.dtype.type(weight)
    if abs(w) < 0.5:
        return start + w * (end - start)
    return end - (end - start) * (start.dtype.type(1) - w)


def _keras_lr(lr, dtype):
    """Keras: ``ops.cast(lr_variable, variable.dtype)``, a scalar of that dtype (per-member
    rates: an array of that dtype)."""
    if isinstance(lr, np.ndarray):
        return lr.astype(dtype)
    return np.dtype(dtype).type(lr)


def _torch_lr(lr, dtype):
    """torch: a Python float (the kernels cast it to the tensor's dtype); per-member rates
    stay float64 until :func:`torch_scalar` casts them where torch would."""
    return lr


def torch_scalar(value, p: np.ndarray):
    """A torch scalar argument (``alpha=``, ``value=``) as the kernel applies it to ``p``:
    a Python float is left to NumPy, which casts it to ``p``'s dtype as torch does; a
    per-member float64 array is cast to ``p``'s dtype explicitly, at the same point."""
    return value.astype(p.dtype) if isinstance(value, np.ndarray) else value


_LR_AS_APPLIED = {"keras": _keras_lr, "torch": _torch_lr}


class Rule(NamedTuple):
    """One framework's arithmetic for one optimizer.

    ``init_state(opt, p) -> dict``: the fresh state of parameter ``p`` (arrays of ``p``'s
    dtype). ``update(opt, p, g, state) -> array``: the new value of ``p`` (``p``'s dtype),
    updating ``state`` in place; hyperparameters are read from the optimizer ``opt``.
    """

    init_state: Callable[["Optimizer", np.ndarray], dict]
    update: Callable[["Optimizer", np.ndarray, np.ndarray, dict], np.ndarray]


# --------------------------------------------------------------------------- base


class Optimizer:
    """Base class: per-key state, in-place updates, dtype preservation.

    Subclasses give :attr:`RULES`, one :class:`Rule` per flavour; the constructor picks
    the flavour's rule once. ``step`` calls ``_init_state(p)`` for a new key and
    ``_update(p, g, state)`` for every step, both of which run that rule; ``_update``
    returns the new parameter value, which ``step`` writes into ``p`` in place.

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
    RULES: Mapping[str, Rule] = {}
    _DEFAULT_LR = {"keras": 0.001, "torch": 0.001}

    def __init__(self, learning_rate: Optional[float], *, flavor: str, lr_dtype: Optional[str] = None):
        self.flavor = check_flavor(flavor)
        self._rule = self.RULES[flavor]
        self._lr_as_applied = _LR_AS_APPLIED[flavor]
        cls = type(self).__name__
        if learning_rate is None:
            learning_rate = self._DEFAULT_LR[flavor]
        self.learning_rate = _learning_rate(cls, learning_rate)
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

    # -- the flavour's rule ------------------------------------------------------

    def _init_state(self, p: np.ndarray) -> dict:
        return self._rule.init_state(self, p)

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict) -> np.ndarray:
        return self._rule.update(self, p, g, state)

    def applied_learning_rate(self, dtype, ndim: int = 0):
        """The learning rate as the flavour's framework multiplies a gradient of ``dtype``
        by it (per-member rates shaped (P, 1, ...) for a parameter of ``ndim`` axes): what a
        compiled step that applies this optimizer's rule itself must use."""
        return self._lr(dtype, ndim)

    def _lr(self, dtype, ndim: int = 0):
        """The learning rate as the framework applies it to a parameter of ``dtype``:
        a scalar of that dtype for Keras, a Python float for torch; rounded to float32
        first when ``lr_dtype`` is ``"float32"``. Per-member rates come shaped (P, 1, ...)
        to broadcast along the leading axis of a parameter of ``ndim`` axes."""
        lr = self.learning_rate
        if isinstance(lr, np.ndarray):
            if self.lr_dtype == "float32":
                lr = lr.astype(np.float32).astype(np.float64)
            lr = lr.reshape((-1,) + (1,) * max(ndim - 1, 0))
        elif self.lr_dtype == "float32":
            lr = float(np.float32(lr))
        return self._lr_as_applied(lr, dtype)

    def select(self, mask) -> None:
        """Keep the members where ``mask`` (P,) is true: with per-member learning rates, cut
        the rates and every state array (moments, accumulators) down the leading axis."""
        if not isinstance(self.learning_rate, np.ndarray):
            raise TypeError(f"{type(self).__name__}.select: the optimizer has one learning rate, not one per member")
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != self.learning_rate.shape:
            raise ValueError(f"{type(self).__name__}.select: mask of shape {mask.shape} for "
                             f"{self.learning_rate.size} members")
        self.learning_rate = self.learning_rate[mask]
        for state in self._state.values():
            for k, v in state.items():
                if isinstance(v, np.ndarray):
                    state[k] = v[mask]
            state["shape"] = (int(mask.sum()),) + tuple(state["shape"][1:])

    def _hyper(self) -> dict:  # pragma: no cover - overridden
        return {}


def _learning_rate(cls: str, value):
    """A float > 0, or a 1-D sequence of them: one rate per member of a population (the
    parameters then carry a leading member axis of that length)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        rates = np.asarray(value, dtype=np.float64)
        if rates.ndim != 1 or rates.size == 0 or not np.all(np.isfinite(rates)) or np.any(rates <= 0):
            raise ValueError(f"{cls}: learning_rate must be a number or a non-empty 1-D list of numbers, "
                             f"each finite and > 0, got {value!r}")
        return rates
    return positive(cls, "learning_rate", value)


def zeros_state(*keys: str) -> Callable[[Optimizer, np.ndarray], dict]:
    """An ``init_state`` that starts each of ``keys`` at zeros like the parameter."""

    def init_state(opt: Optimizer, p: np.ndarray) -> dict:
        return {k: np.zeros_like(p) for k in keys}

    return init_state
