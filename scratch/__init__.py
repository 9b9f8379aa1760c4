"""The scratch engine: the same networks in plain NumPy, the hub of the suite.

``scratch.build(layers, input_shape, dtype=np.float64, seed=0)`` returns a
:class:`~scratch.model.Sequential`. Layers come from :mod:`scratch.spec`, named
architectures from :mod:`scratch.architectures`. This package imports NumPy only.
"""
from . import architectures, data, gradcheck, losses, spec
from .model import Sequential, Trainer, build

__all__ = ["Sequential", "Trainer", "build", "architectures", "data", "gradcheck", "losses", "spec"]
