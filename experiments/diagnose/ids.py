"""The stable diagnosis ids, one module constant each, and the table that documents them.

==================================  =====================================================
id                                  the mistake it names
==================================  =====================================================
raised                              the user's code raised (set by the caller)
shape                               the user's array has the wrong shape (set by the caller)
dtype                               the user's array has the wrong dtype (set by the caller)
non-finite                          NaN or inf where the reference is finite
epsilon                             off by a small additive constant (or a factor within
                                    1e-4 of 1): an epsilon where none belongs
scale                               off by a constant factor; named when it is N, 1/N, 2,
                                    1/2, -1, kh, kw, kh*kw, C, filters, K or their inverses
kernel-flipped                      the kernel rotated by 180 degrees: a convolution
                                    instead of a cross-correlation
kernel-transposed                   kernel rows and columns swapped (kh <-> kw)
in-out-swapped                      kernel input and output axes swapped
flatten-order                       features flattened in H, W, C (or another) order
                                    instead of C, H, W
activation-derivative-at-zero       relu'(0) taken as 1 (``z >= 0``): the gradient passes
                                    where the pre-activation is exactly 0
activation-derivative-missing       the activation's derivative left out of backward
activation-derivative-at-output     the derivative formula evaluated at the activation's
                                    output instead of its input
activation-derivative-of-upstream   the derivative evaluated at the upstream gradient
activation-derivative-extra         a derivative factor where no activation ran (or twice)
softmax-diagonal-jacobian           softmax backward keeps only the diagonal y(1 - y)
one-channel-only                    only one input channel reaches the output
one-filter-only                     only one filter (output channel) is computed
stride-ignored-in-backward          backward places window o at offset o, not o * stride
conv-backward-stride-off-by-one     backward scatters with stride - 1
padding-side                        the odd "same" padding row/column on the wrong side
avgpool-counts-padding              "same" average pooling divides by the full window
ties-all-get-gradient               max-pool gradient sent to every tied maximum
batch-mispaired                     samples paired with another sample's upstream gradient
bias-not-summed                     bias gradient from one sample, not summed over the batch
overlap-overwrites                  overlapping windows' gradients overwritten, not added
loss-divided-by-classes             a mean loss divided by N * K instead of N
loss-summed-not-averaged            a mean loss summed over the batch
loss-averaged-not-summed            a summed loss divided by the batch size
loss-gradient-of-outputs            cross-entropy gradient taken with respect to the
                                    probabilities, not the logits
softmax-wrong-axis                  softmax normalised over the batch axis, not the classes
eps-outside-sqrt                    optimizer epsilon added after the square root
eps-inside-sqrt                     optimizer epsilon added under the square root
bias-correction-missing             Adam without bias correction
step-counter-frozen                 Adam's step counter never advances
momentum-sign                       the momentum buffer added with the wrong sign
dampening                           momentum buffer damped by (1 - momentum)
nesterov-as-classical               nesterov=True ignored
adagrad-initial-accumulator         Adagrad's accumulator started at the other framework's
                                    value (0 vs 0.1)
accumulator-per-row                 one accumulator per row instead of per element
l2-after-step                       L2 applied as a decay after the step, not in the gradient
l2-gradient-half                    L2 adds lambda * W to the gradient, not 2 * lambda * W
l2-on-biases                        L2 applied to biases too
backward-uses-updated-weights       a layer backpropagates through weights already updated
first-layer-not-updated             the first layer's parameters are never updated
batch-scaled-twice                  gradients divided by the batch size twice
convention                          not a mistake: a layout left out is not the default;
                                    the text names the layout to declare (set by the caller)
==================================  =====================================================

Planted breakages of :mod:`experiments.parity.breakages` run in reverse report the
generic id when they are the same mistake (:data:`BREAKAGE_IDS`), their own name otherwise.
"""
from __future__ import annotations

RAISED = "raised"
SHAPE = "shape"
DTYPE = "dtype"
NON_FINITE = "non-finite"
EPSILON = "epsilon"
SCALE = "scale"
KERNEL_FLIPPED = "kernel-flipped"
KERNEL_TRANSPOSED = "kernel-transposed"
IN_OUT_SWAPPED = "in-out-swapped"
FLATTEN_ORDER = "flatten-order"
ACT_AT_ZERO = "activation-derivative-at-zero"
ACT_MISSING = "activation-derivative-missing"
ACT_AT_OUTPUT = "activation-derivative-at-output"
ACT_OF_UPSTREAM = "activation-derivative-of-upstream"
ACT_EXTRA = "activation-derivative-extra"
SOFTMAX_DIAGONAL = "softmax-diagonal-jacobian"
ONE_CHANNEL = "one-channel-only"
ONE_FILTER = "one-filter-only"
STRIDE_IGNORED = "stride-ignored-in-backward"
STRIDE_OFF_BY_ONE = "conv-backward-stride-off-by-one"
PADDING_SIDE = "padding-side"
AVGPOOL_COUNTS_PADDING = "avgpool-counts-padding"
TIES_ALL = "ties-all-get-gradient"
BATCH_MISPAIRED = "batch-mispaired"
BIAS_NOT_SUMMED = "bias-not-summed"
OVERLAP_OVERWRITES = "overlap-overwrites"
LOSS_DIVIDED_BY_CLASSES = "loss-divided-by-classes"
LOSS_SUMMED = "loss-summed-not-averaged"
LOSS_AVERAGED = "loss-averaged-not-summed"
LOSS_GRADIENT_OF_OUTPUTS = "loss-gradient-of-outputs"
SOFTMAX_AXIS = "softmax-wrong-axis"
EPS_OUTSIDE_SQRT = "eps-outside-sqrt"
EPS_INSIDE_SQRT = "eps-inside-sqrt"
BIAS_CORRECTION_MISSING = "bias-correction-missing"
STEP_COUNTER_FROZEN = "step-counter-frozen"
MOMENTUM_SIGN = "momentum-sign"
DAMPENING = "dampening"
NESTEROV_AS_CLASSICAL = "nesterov-as-classical"
ADAGRAD_INITIAL_ACCUMULATOR = "adagrad-initial-accumulator"
ACCUMULATOR_PER_ROW = "accumulator-per-row"
L2_AFTER_STEP = "l2-after-step"
L2_GRADIENT_HALF = "l2-gradient-half"
L2_ON_BIASES = "l2-on-biases"
BACKWARD_USES_UPDATED_WEIGHTS = "backward-uses-updated-weights"
FIRST_LAYER_NOT_UPDATED = "first-layer-not-updated"
BATCH_SCALED_TWICE = "batch-scaled-twice"
CONVENTION = "convention"

#: Every id, in the order of the table above.
ALL = (RAISED, SHAPE, DTYPE, NON_FINITE, EPSILON, SCALE, KERNEL_FLIPPED, KERNEL_TRANSPOSED, IN_OUT_SWAPPED,
       FLATTEN_ORDER, ACT_AT_ZERO, ACT_MISSING, ACT_AT_OUTPUT, ACT_OF_UPSTREAM, ACT_EXTRA, SOFTMAX_DIAGONAL,
       ONE_CHANNEL, ONE_FILTER, STRIDE_IGNORED, STRIDE_OFF_BY_ONE, PADDING_SIDE, AVGPOOL_COUNTS_PADDING,
       TIES_ALL, BATCH_MISPAIRED, BIAS_NOT_SUMMED, OVERLAP_OVERWRITES, LOSS_DIVIDED_BY_CLASSES, LOSS_SUMMED,
       LOSS_AVERAGED, LOSS_GRADIENT_OF_OUTPUTS, SOFTMAX_AXIS, EPS_OUTSIDE_SQRT, EPS_INSIDE_SQRT,
       BIAS_CORRECTION_MISSING, STEP_COUNTER_FROZEN, MOMENTUM_SIGN, DAMPENING, NESTEROV_AS_CLASSICAL,
       ADAGRAD_INITIAL_ACCUMULATOR, ACCUMULATOR_PER_ROW, L2_AFTER_STEP, L2_GRADIENT_HALF, L2_ON_BIASES,
       BACKWARD_USES_UPDATED_WEIGHTS, FIRST_LAYER_NOT_UPDATED, BATCH_SCALED_TWICE, CONVENTION)

#: Ids set by the caller from the user's raw output, never by this package.
CALLER_IDS = (RAISED, SHAPE, DTYPE, CONVENTION)

#: Planted breakage name -> the id its reverse run reports.
BREAKAGE_IDS = {
    "conv-kernel-transposed": KERNEL_TRANSPOSED,
    "convolution-not-correlation": KERNEL_FLIPPED,
    "flatten-hwc-order": FLATTEN_ORDER,
    "relu-derivative-missing": ACT_MISSING,
    "sigmoid-derivative-twice": ACT_AT_OUTPUT,
    "softmax-diagonal-jacobian": SOFTMAX_DIAGONAL,
    "maxpool-gradient-to-all-ties": TIES_ALL,
    "avgpool-counts-padding": AVGPOOL_COUNTS_PADDING,
    "same-padding-top-left": PADDING_SIDE,
    "conv-backward-stride-off-by-one": STRIDE_OFF_BY_ONE,
    "dense-bias-gradient-mean": SCALE,
    "l2-gradient-half": L2_GRADIENT_HALF,
    "l2-on-biases": L2_ON_BIASES,
    "cce-sum-not-mean": LOSS_SUMMED,
    "rmsprop-eps-outside-sqrt": EPS_OUTSIDE_SQRT,
    "adagrad-zero-accumulator": ADAGRAD_INITIAL_ACCUMULATOR,
    "nesterov-as-classical": NESTEROV_AS_CLASSICAL,
}
