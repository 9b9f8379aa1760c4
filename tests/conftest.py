"""Shared pytest setup: torch is imported before anything imports TensorFlow (in one
process, TensorFlow loaded first can crash torch's import), then ``keras_models``, which
sets the Keras environment in its one place (``keras_models/env.py``) before it loads
Keras; tests that import ``keras`` directly find it configured."""
import torch  # noqa: F401

import keras_models  # noqa: F401
