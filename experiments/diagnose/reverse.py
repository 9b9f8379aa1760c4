"""The parity suite's planted breakages run in reverse: the reference recomputed with the
breakage applied to the scratch engine (its monkeypatch active while the layer is built
and run). A breakage that is a generic mistake reports the generic id
(:data:`.ids.BREAKAGE_IDS`); ones that are not layer mistakes (losses, L2, optimizers) are
left to :mod:`.losses`, :mod:`.networks` and :mod:`.optimizers`.
"""
from __future__ import annotations

from experiments.parity import breakages as B

from . import ids
from .core import Candidate

#: Breakages that act on a single layer's forward or backward pass.
LAYER_BREAKAGES = ("conv-kernel-transposed", "convolution-not-correlation", "flatten-hwc-order",
                   "relu-derivative-missing", "sigmoid-derivative-twice", "softmax-diagonal-jacobian",
                   "maxpool-gradient-to-all-ties", "avgpool-counts-padding", "same-padding-top-left",
                   "conv-backward-stride-off-by-one", "dense-bias-gradient-mean")

FIXES = {
    "softmax-diagonal-jacobian": "softmax's Jacobian is not diagonal - use y * (g - sum(g * y)) per sample",
    "maxpool-gradient-to-all-ties": "when several cells tie for the maximum, only the first (row-major) gets the "
                                    "gradient, as in TensorFlow and PyTorch - route it to the first maximum only",
    "avgpool-counts-padding": "with 'same' padding the mean is over the real cells only - divide each window "
                              "by the number of cells inside the input",
    "same-padding-top-left": "TensorFlow's 'same' puts the odd padding row/column at the bottom/right - pad "
                             "(total // 2) before and the rest after",
    "conv-backward-stride-off-by-one": "your backward scatters with stride - 1 - use the forward stride",
    "dense-bias-gradient-mean": "the bias gradient is averaged over the batch - sum it (the loss already "
                                "averages)",
}


def candidates(ctx):
    for name in LAYER_BREAKAGES:
        b = B.get(name)
        try:
            run = ctx.run(patch=b.patch)
            pred = ctx.full(run)[ctx.quantity]
        except (ValueError, IndexError):  # the breakage cannot apply to this layer's shapes
            continue
        fix = FIXES.get(name, f"the parity suite's planted mistake '{b.mistake}' - undo it")
        yield Candidate(ids.BREAKAGE_IDS[name], f"the planted mistake '{b.mistake}'", fix, pred)


CANDIDATES = (candidates,)
