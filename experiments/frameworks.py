"""One entry point to the three trainers, importing each framework only when asked for.

All trainers share the contract of :class:`scratch.model.Trainer`: the same
constructor arguments, ``fit`` over the same seeded batch order, and NCHW NumPy data.
"""
from __future__ import annotations

import importlib.util
import os

FRAMEWORKS = ("scratch", "keras", "torch")
_MODULES = {"scratch": ("numpy",), "keras": ("tensorflow", "keras"), "torch": ("torch",)}


def check_names(frameworks) -> tuple:
    """``frameworks`` as a tuple after checking each name; unknown names list the choices."""
    if isinstance(frameworks, str):
        frameworks = [f for f in frameworks.split(",") if f]
    frameworks = tuple(frameworks)
    if not frameworks:
        raise ValueError(f"frameworks: the list is empty; choose from {', '.join(FRAMEWORKS)}")
    for f in frameworks:
        if f not in FRAMEWORKS:
            raise ValueError(f"frameworks: unknown {f!r}; allowed: {', '.join(FRAMEWORKS)}")
    if len(set(frameworks)) != len(frameworks):
        raise ValueError(f"frameworks: {list(frameworks)} names a framework twice")
    return frameworks


def missing(framework: str) -> str | None:
    """The name of a package ``framework`` needs that is not installed, or None."""
    for module in _MODULES[framework]:
        if importlib.util.find_spec(module) is None:
            return module
    return None


def import_framework(framework: str):
    """Import and return the package of ``framework`` (``scratch``, ``keras_models``, ``torch_models``)."""
    check_names([framework])
    if framework == "scratch":
        import scratch

        return scratch
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if framework == "keras":
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        if importlib.util.find_spec("torch") is not None:
            import torch  # noqa: F401  torch before TensorFlow in one process (DESIGN.md section 5)
        import keras_models

        return keras_models
    import torch_models

    return torch_models


def trainer_class(framework: str):
    """The ``Trainer`` class of ``framework``."""
    if framework == "scratch":
        from scratch.model import Trainer

        return Trainer
    return import_framework(framework).Trainer


def make_trainer(framework: str, layers, input_shape, **kwargs):
    """Build ``framework``'s trainer; ``kwargs`` as in :class:`scratch.model.Trainer`.

    ``flavor`` (the scratch optimizer rule) is passed to the scratch engine only.
    """
    flavor = kwargs.pop("flavor", None)
    if framework == "scratch" and flavor is not None:
        kwargs["flavor"] = flavor
    return trainer_class(framework)(layers, input_shape, **kwargs)
