"""The suite's networks in PyTorch: build from the spec, move weights to and from scratch,
read a spec back from a torch model, and train under the shared contract.

* :func:`build` (``builder``): spec + canonical input shape -> ``nn.Sequential`` (NCHW),
  children named by spec index (``"i"``, ``"i_pad"``, ``"i_<activation>"``) so that
  ``state_dict`` keys line up with scratch's ``"i.kernel"``.
* :func:`from_scratch` / :func:`to_scratch` (``transfer``): scratch state dict <-> torch
  parameters; Linear weights transposed, everything else as is; bit-exact.
* :func:`weight_plan` (``transfer``): which torch parameter is which scratch weight.
* :func:`spec_of` (``spec_of``): the spec of a model from ``build`` or written by hand.
* :class:`Trainer` (``trainer``): loss, optimizer, L2 and ``fit`` as in scratch, run by
  :func:`scratch.trainer.run_epochs`.
* :func:`configure_worker_threads`: one thread per worker process, denormals flushed.

Imports torch, NumPy and scratch only: never TensorFlow, Keras or ``keras_models``
(see docs/DESIGN.md, 'Layering'). Each module's docstring lists the conventions it maps.
"""
from .builder import AvgPool2dSame, build, entries, forward_layers
from .spec_of import spec_of
from .trainer import OPTIMIZERS, Trainer, configure_worker_threads, make_optimizer
from .transfer import TRANSPOSED, from_scratch, to_scratch, weight_plan

__all__ = [
    "AvgPool2dSame",
    "OPTIMIZERS",
    "TRANSPOSED",
    "Trainer",
    "build",
    "configure_worker_threads",
    "entries",
    "forward_layers",
    "from_scratch",
    "make_optimizer",
    "spec_of",
    "to_scratch",
    "weight_plan",
]
