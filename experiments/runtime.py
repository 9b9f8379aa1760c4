"""Process set-up in one place: which frameworks exist, how they are imported, threads.

* :data:`FRAMEWORKS` (defined with its check in :mod:`experiments.options`).
* :func:`import_framework`: imports ``scratch``, ``keras_models`` or ``torch_models``
  only when asked for. Keras is imported after torch (when torch is installed): in one
  process TensorFlow loaded first can crash torch's import, and Keras's own test set-up
  orders them the same way. ``keras_models`` sets its own environment
  (``KERAS_BACKEND``, ``TF_CPP_MIN_LOG_LEVEL``) before it imports Keras.
* :func:`make_trainer`: every framework's trainer behind one call; all share the
  constructor of :class:`scratch.model.Trainer` and the ``fit`` contract.
* :func:`one_thread_environment`, :func:`limit_threads`: one thread per framework in a
  process that trains. On a 2-core machine two processes that each use two threads slow
  PyTorch down by 10x or more, so every worker (and the benchmark) runs NumPy's BLAS,
  PyTorch and TensorFlow on one thread each; PyTorch also flushes denormals, which
  otherwise make late, tiny-gradient epochs several times slower.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import warnings

from .options import FRAMEWORKS, frameworks as check_frameworks

_MODULES = {"scratch": ("numpy",), "keras": ("tensorflow", "keras"), "torch": ("torch",)}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_configured: set = set()


def missing(framework: str) -> str | None:
    """The name of a package ``framework`` needs that is not installed, or None."""
    for module in _MODULES[framework]:
        if importlib.util.find_spec(module) is None:
            return module
    return None


def available(frameworks=FRAMEWORKS) -> tuple:
    """The frameworks of ``frameworks`` whose packages are installed, in order."""
    return tuple(f for f in frameworks if not missing(f))


def import_framework(framework: str):
    """Import and return the package of ``framework`` (``scratch``, ``keras_models``, ``torch_models``)."""
    check_frameworks([framework], "framework")
    if framework == "scratch":
        import scratch

        return scratch
    if framework == "keras":
        if "tensorflow" not in sys.modules and importlib.util.find_spec("torch") is not None:
            import torch  # noqa: F401  torch before TensorFlow in one process
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


def one_thread_environment() -> None:
    """Set the thread variables to 1 in this process's environment, importing nothing:
    processes started from here inherit them before their first import."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def limit_threads(frameworks=FRAMEWORKS) -> None:
    """One thread per framework of ``frameworks`` in this process (idempotent).

    Call it before the first training step. A later call for another framework (a
    serial run of torch after one of scratch, a Dask worker reused by another run)
    applies that framework's limit too.
    """
    one_thread_environment()
    if "blas" not in _configured:
        from threadpoolctl import threadpool_limits  # ships with scikit-learn

        threadpool_limits(1)
        _configured.add("blas")
    if "torch" in frameworks and importlib.util.find_spec("torch") is not None:
        import torch

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        if "torch" not in _configured:
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:  # settable only before the first parallel work; then it stays
                pass
            _configured.add("torch")
        torch.set_flush_denormal(True)
    if "keras" in frameworks and "keras" not in _configured and importlib.util.find_spec("tensorflow") is not None:
        import_framework("keras")
        import tensorflow as tf

        _configured.add("keras")
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already initialised its thread pools
            if tf.config.threading.get_intra_op_parallelism_threads() != 1:
                warnings.warn("TensorFlow was initialised in this process before it could be limited to one "
                              "thread; Keras cells run here may differ in the last bits from the same cells on "
                              "the process or dask executors", RuntimeWarning, stacklevel=2)
