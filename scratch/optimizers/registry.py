"""The optimizer names of the suite, their presets, and :func:`make`.

The one definition of the names every framework accepts: ``keras_models`` and
``torch_models`` build their native optimizers from :data:`OPTIMIZERS`, :data:`PRESETS`
and :data:`BASE_OPTIMIZER`, and the command line offers :data:`OPTIMIZERS`.
"""
from __future__ import annotations

from .adagrad import Adagrad
from .adam import Adam
from .base import Optimizer, check_flavor
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["BASE_OPTIMIZER", "OPTIMIZERS", "PRESETS", "make"]

#: Every optimizer name, in the order the command line and the reports list them.
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam")
#: Names that are SGD with preset hyperparameters; values the caller gives win.
PRESETS = {"momentum": {"momentum": 0.9}, "nesterov": {"momentum": 0.9, "nesterov": True}}
#: Name -> the optimizer it builds (``"sgd"``, ``"rmsprop"``, ``"adagrad"`` or ``"adam"``).
BASE_OPTIMIZER = {name: "sgd" if name in PRESETS else name for name in OPTIMIZERS}

_CLASSES = {cls.name: cls for cls in (SGD, RMSprop, Adagrad, Adam)}


def make(name: str, learning_rate: float, *, flavor: str = "keras", **hyper) -> Optimizer:
    """Build an optimizer by name.

    Parameters
    ----------
    name : str
        One of :data:`OPTIMIZERS`. ``"momentum"`` is ``SGD(momentum=0.9)`` and
        ``"nesterov"`` is ``SGD(momentum=0.9, nesterov=True)``, unless ``hyper``
        overrides them.
    learning_rate : float or 1-D sequence of floats
        Finite and > 0; a sequence gives each member of a population its own rate (the
        parameters carry a leading member axis; see :mod:`scratch.population`).
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
    if name not in BASE_OPTIMIZER:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    check_flavor(flavor)
    if learning_rate is None:
        raise ValueError(f"{name}: learning_rate must be given (finite and > 0)")
    import inspect

    cls = _CLASSES[BASE_OPTIMIZER[name]]
    kwargs = {**PRESETS.get(name, {}), **hyper}
    taken = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "learning_rate", "flavor")]
    unknown = sorted(set(kwargs) - set(taken))
    if unknown:  # name only what the class does not take, never the valid ones beside them
        raise ValueError(f"{name}: unknown hyperparameter(s) {', '.join(unknown)}; allowed: {', '.join(taken)}")
    return cls(learning_rate, flavor=flavor, **kwargs)
