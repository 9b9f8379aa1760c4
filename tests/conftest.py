"""Shared pytest setup: torch is imported before anything imports TensorFlow (in one
process, TensorFlow loaded first can crash torch's import). Tests that use Keras import
``keras_models`` first: it sets the Keras environment in its one place
(``keras_models/env.py``) before Keras loads."""
import torch  # noqa: F401
