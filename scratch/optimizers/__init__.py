"""First-order optimizers in NumPy, each in a Keras and a torch flavour.

One module per optimizer (:mod:`.sgd`, :mod:`.rmsprop`, :mod:`.adagrad`, :mod:`.adam`),
each holding both flavours' rules side by side; :mod:`.base` holds the shared
machinery and the conventions (in-place steps, dtypes, how each framework rounds its
constants); :mod:`.registry` the names, presets and :func:`make`.
"""
from .adagrad import Adagrad
from .adam import Adam
from .base import FLAVORS, LR_DTYPES, Optimizer
from .registry import BASE_OPTIMIZER, OPTIMIZERS, PRESETS, make
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "BASE_OPTIMIZER",
    "FLAVORS",
    "LR_DTYPES",
    "OPTIMIZERS",
    "PRESETS",
    "Optimizer",
    "SGD",
    "RMSprop",
    "Adagrad",
    "Adam",
    "make",
]
