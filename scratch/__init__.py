"""The scratch engine: the same networks in plain NumPy, the hub of the suite.

``scratch.build(layers, input_shape, dtype=np.float64, seed=0)`` returns a
:class:`~scratch.model.Sequential`. Layers come from :mod:`scratch.spec`, named
architectures from :mod:`scratch.architectures`, optimizers from :mod:`scratch.optimizers`,
the shared input checks from :mod:`scratch.checks` and the epoch loop every framework
runs (with its :class:`~scratch.trainer.EpochTrainer` interface) from
:mod:`scratch.trainer`. This package imports NumPy only.
"""
from . import architectures, checks, data, gradcheck, losses, optimizers, spec
from .model import Sequential, Trainer, build
from .trainer import EpochTrainer, run_epochs

__all__ = [
    "EpochTrainer", "Sequential", "Trainer", "build", "run_epochs",
    "architectures", "checks", "data", "gradcheck", "losses", "optimizers", "spec",
]
