"""Shared pytest setup: import torch before anything imports TensorFlow."""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import torch  # noqa: E402,F401  (torch before TensorFlow: avoids a crash at import)
