"""The one place that sets up the Keras/TensorFlow process environment.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, and TensorFlow reads
``TF_CPP_MIN_LOG_LEVEL`` and ``TF_ENABLE_ONEDNN_OPTS`` when its C++ runtime loads; all
must therefore be set before the first ``import keras``.

``TF_ENABLE_ONEDNN_OPTS=1``: left unset, TensorFlow chooses its oneDNN kernels by CPU
model (on for some x86 CPUs, off for others, an AMD EPYC without AVX-512 among them), so
the same code would round differently from one machine to the next. Measured on such
a CPU without oneDNN: a float32 Conv2D with a fused softmax on +-1000 inputs had a
kernel gradient 5.8e-3 off the float64 value (8e-6 with oneDNN, 8e-6 in NumPy), and the
Keras population's epoch was 1.3x slower. With it set, every machine runs the kernels the
parity bounds were measured with. :func:`configure` is called at the top of
``keras_models/__init__.py``, before any module of the package imports keras. Values the
user has already set win (``os.environ.setdefault``).

Imports nothing but ``os``: importing this module never loads a framework.
"""
from __future__ import annotations

import os

__all__ = ["BACKEND", "ONEDNN", "TF_LOG_LEVEL", "configure"]

#: The Keras backend the package is written for.
BACKEND = "tensorflow"
#: Default TensorFlow C++ log level: "3" shows errors only (no start-up banners).
TF_LOG_LEVEL = "3"
#: TensorFlow's oneDNN kernels on every CPU (see the module docstring).
ONEDNN = "1"


def configure() -> None:
    """Set ``KERAS_BACKEND=tensorflow``, ``TF_CPP_MIN_LOG_LEVEL=3`` and
    ``TF_ENABLE_ONEDNN_OPTS=1`` unless already set.

    Call it before ``import keras``. A backend other than TensorFlow, set by the user,
    is left alone (and Keras will then use it).
    """
    os.environ.setdefault("KERAS_BACKEND", BACKEND)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", ONEDNN)
