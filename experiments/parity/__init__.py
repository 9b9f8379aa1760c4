"""The parity suite: scratch against Keras and PyTorch, outside and inside pytest.

* :mod:`.compare`: the one comparison helper (:func:`compare`, :func:`assert_same`).
* :mod:`.tolerances`: the bounds, keyed by dtype, with their anchors and measured worst errors.
* :mod:`.cases`: the matrix (layer cases with readable ids, loss cases, model cases).
* :mod:`.engines`: one network run in scratch, torch or Keras, returned in the scratch layout.
* :mod:`.runner`: layers, losses, models (layer by layer) and optimizer trajectories as
  lists of results; :func:`runner.first_disagreeing_layer`.
* :mod:`.breakages`: planted bugs that the checker must report.
* :mod:`.testing`: the one-line pytest helpers. ``xfw parity`` is :mod:`experiments.parity_cli`.
"""
from .compare import Result, assert_same, compare

__all__ = ["Result", "assert_same", "compare"]
