"""Thread settings for processes that train: one thread per framework.

On this 2-core machine two processes that each use two threads slow PyTorch down by
10x or more, so every worker (and the benchmark) runs NumPy's BLAS, PyTorch and
TensorFlow on one thread each. PyTorch also flushes denormals, which otherwise make
late, tiny-gradient epochs several times slower.
"""
from __future__ import annotations

import importlib.util
import os

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_done = False


def configure_threads(frameworks=("scratch", "keras", "torch")) -> None:
    """Limit every framework in this process to one thread (idempotent).

    Call it before the first training step. Environment variables are set too, so that
    processes started from this one inherit the limit from their first import.
    """
    global _done
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    if _done:
        return
    _done = True
    from threadpoolctl import threadpool_limits  # ships with scikit-learn

    threadpool_limits(1)
    if "torch" in frameworks and importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only settable before the first parallel work; then it stays
            pass
        torch.set_flush_denormal(True)
    if "keras" in frameworks and importlib.util.find_spec("tensorflow") is not None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already initialised its thread pools
            pass
