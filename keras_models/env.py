"""The one place that sets up the Keras/TensorFlow process environment.

Keras reads ``KERAS_BACKEND`` once, when it is first imported, and TensorFlow reads
``TF_CPP_MIN_LOG_LEVEL`` when its C++ runtime loads; both must therefore be set before
the first ``import keras``. :func:`configure` is called at the top of
``keras_models/__init__.py``, before any module of the package imports keras. Values the
user has already set win (``os.environ.setdefault``).

Imports nothing but ``os``: importing this module never loads a framework.
"""
from __future__ import annotations

import os

__all__ = ["BACKEND", "TF_LOG_LEVEL", "configure"]

#: The Keras backend the package is written for.
BACKEND = "tensorflow"
#: Default TensorFlow C++ log level: "3" shows errors only (no start-up banners).
TF_LOG_LEVEL = "3"


def configure() -> None:
    """Set ``KERAS_BACKEND=tensorflow`` and ``TF_CPP_MIN_LOG_LEVEL=3`` unless already set.

    Call it before ``import keras``. A backend other than TensorFlow, set by the user,
    is left alone (and Keras will then use it).
    """
    os.environ.setdefault("KERAS_BACKEND", BACKEND)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
