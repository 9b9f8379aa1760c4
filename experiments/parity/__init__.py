"""The parity suite: scratch against Keras and PyTorch, outside and inside pytest."""
from .compare import Result, assert_same, compare

__all__ = ["Result", "assert_same", "compare"]
