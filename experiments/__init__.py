"""Experiment drivers: datasets, configs, grid searches and the ``xfw`` command line."""

import os as _os

# TensorFlow's C++ start-up logs (oneDNN notice, failed CUDA probe on CPU machines) would
# bury the output of every command; 3 keeps them quiet. Set the variable to override.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

