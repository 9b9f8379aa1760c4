"""The parity suite: scratch against Keras and PyTorch, outside and inside pytest.

* :mod:`.compare`: the one comparison helper (:func:`compare`, :func:`assert_same`).
* :mod:`.tolerances`: the bounds, keyed by dtype, with their anchors and measured worst errors.
* :mod:`.cases`: the matrix (layer cases with readable ids, loss cases, model cases).
* :mod:`.data`: the weights, inputs and upstream gradients of every case, seeded by its id.
* :mod:`.engines`: one network run in scratch, torch or Keras, returned in the scratch layout.
* :mod:`.results`: the :class:`~.results.Report`, the frameworks that can run, the cache.
* one module per part: :mod:`.layers`, :mod:`.losses`, :mod:`.models` (layer by layer,
  :func:`.models.first_disagreeing_layer`), :mod:`.optimizers` (trajectories, the Adam gap).
* :mod:`.runner`: :func:`~.runner.run`, the whole matrix or chosen parts.
* :mod:`.breakages`: planted bugs that the checker must report.
* :mod:`.testing`: the one-line pytest helpers. ``xfw parity`` is :mod:`experiments.cli.parity`.
"""
from .compare import Result, assert_same, compare

__all__ = ["Result", "assert_same", "compare"]
