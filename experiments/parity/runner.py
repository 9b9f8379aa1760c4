"""Run the parity matrix: scratch against each framework, as lists of :class:`Result`.

Four parts, each a list of :class:`~experiments.parity.compare.Result` built by the one
helper :func:`~experiments.parity.compare.compare`:

``layers``
    :func:`.layers.run_layer_case`: every case of :func:`cases.layer_cases`; quantities
    ``output``, ``input gradient``, ``kernel gradient``, ``bias gradient`` under a random
    upstream gradient (a sum or ones could hide a transpose).
``losses``
    :func:`.losses.run_loss_case`: ``data loss``, ``L2 penalty`` (Keras: the stock
    ``keras.regularizers.L2``; torch: the explicit penalty), ``objective``, ``loss
    gradient (logits)`` (or ``(outputs)`` for MSE), ``output`` and the objective's
    ``<i>.kernel gradient`` / ``<i>.bias gradient``; :func:`.losses.run_torch_decay` shows torch's
    ``SGD(weight_decay=2*lambda)`` on kernels takes the step of the penalty.
``models``
    :func:`.models.run_model_parity`: for a registered architecture, the loss part above
    (categorical cross-entropy with L2 on one batch) and a layer-by-layer comparison
    (``layer i (Kind) output`` / ``input gradient`` / ``kernel gradient`` /
    ``bias gradient``, each tagged with ``Result.layer``) from which
    :func:`.models.first_disagreeing_layer` names the first layer where two frameworks part.
``optimizers``
    :func:`.optimizers.run_trajectory`: 25 steps of an optimizer with L2 on a registered architecture,
    scratch with the torch flavour against ``torch.optim`` and with the Keras flavour
    against ``keras.optimizers``, float64; ``param after step k (key)``.
    :func:`.optimizers.adam_gap` measures what Keras and torch Adam cannot agree on.

Frameworks are imported lazily; one that is not installed is reported in
:attr:`Report.skipped` by name, never as passed. Framework-side computations are cached
per case (they do not depend on the scratch engine), the scratch side is recomputed on
every call, so a planted bug (:mod:`.breakages`) always shows.
"""
from __future__ import annotations

from . import cases as C
from .data import STEPS, TRAJECTORY_ARCH
from .layers import run_layer_cases
from .losses import run_loss_cases
from .models import run_models
from .optimizers import TRAJECTORIES, run_trajectories
from .results import FRAMEWORKS, Report, available

PARTS = ("layers", "losses", "models", "optimizers")


def run(parts=PARTS, *, archs=None, kinds=None, dtypes=C.DTYPES, frameworks=FRAMEWORKS,
        steps: int = STEPS) -> Report:
    """The whole matrix (or the chosen ``parts``); what ``xfw parity`` runs.

    ``archs`` restricts the model part and the trajectories (which use the first of
    ``archs``, default ``course_cnn``); trajectories run in float64 only, when float64
    is among ``dtypes``.
    """
    report = Report()
    ok, skipped = available(frameworks)
    report.skipped.update(skipped)
    if "layers" in parts:
        report.extend(run_layer_cases(kinds, dtypes, ok))
    if "losses" in parts:
        report.extend(run_loss_cases(dtypes, ok))
    if "models" in parts:
        report.extend(run_models(archs, dtypes, ok))
    if "optimizers" in parts and "float64" in dtypes:
        arch = archs[0] if archs else TRAJECTORY_ARCH
        report.extend(run_trajectories(TRAJECTORIES, ok, arch, steps))
    return report
