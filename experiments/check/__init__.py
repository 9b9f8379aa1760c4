"""Check your own NumPy code: a layer, a loss, an optimizer or a whole network against
PyTorch and Keras (float64, spec-built, loaded with your weights), in your conventions.

::

    from experiments import check
    from scratch import spec as S

    report = check.layer(S.Conv2D(2, 3, activation="relu"), input_shape=(1, 6, 6),
                         forward=conv.forward, backward=conv.backward,
                         input_layout="h w", output_layout="h w c",
                         params={"kernel": (lambda: conv.K, "(kh kw) out")},
                         grads={"kernel": lambda: conv.dK})
    assert report.passed, report

Public names: :func:`layer`, :func:`loss`, :func:`optimizer`, :func:`network`,
:class:`UserLayer` (one entry of a network), :class:`Report`, :class:`CheckUsageError`,
:func:`run_file` (what ``xfw check FILE.py`` runs).
"""
from .files import run_file
from .layer import layer
from .loss import loss
from .network import network
from .optimizer import optimizer
from .report import Report
from .user_layer import CheckUsageError, UserLayer

__all__ = ["CheckUsageError", "Report", "UserLayer", "layer", "loss", "network", "optimizer", "run_file"]
