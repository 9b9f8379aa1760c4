"""Planted bugs: the parity suite proves it can fail.

Each :class:`Breakage` is a mistake people really make when they write a network from
scratch, planted in the scratch engine by a monkeypatch (``Breakage.patch()`` is a context
manager; :mod:`unittest.mock` restores the original on exit, also on error). It names the
probe that must catch it and what the parity checker must report: the layer and the
quantity (for a model probe, through :func:`.models.first_disagreeing_layer`; for a layer,
loss or trajectory probe, the first failing quantity in the order the parts compare
them), and, where the probe allows it, the exact set of quantities that must fail (so a
bug in the bias gradient must not show in the kernel gradient).

:func:`detect` runs the probe without the bug first (it must pass: the framework results
are cached then) and again with it. ``tests/test_parity_breakages.py`` asserts each one.

==============================  ====================================================
name                            what is wrong (probe: expected report)
==============================  ====================================================
conv-kernel-transposed          Conv2D reads ``W[o, c, j, i]``: kh and kw swapped
                                (course_cnn: layer 0 output)
convolution-not-correlation     Conv2D flips the kernel (true convolution, as in a
                                signal-processing textbook) (lenet: layer 0 output)
flatten-hwc-order               Flatten in H, W, C order, Keras's, instead of C, H, W
                                (course_cnn: layer 2 output)
relu-derivative-missing         ReLU backward passes the gradient through unmasked
                                (course_cnn: layer 3 kernel gradient)
sigmoid-derivative-twice        sigmoid backward applies sigmoid to its own output again,
                                sigma(a)(1 - sigma(a)) with a = sigma(z)
                                (course_ffnn: layer 1 kernel gradient)
softmax-diagonal-jacobian       softmax backward keeps only the diagonal y(1 - y)
                                (course_cnn: layer 4 kernel gradient)
maxpool-gradient-to-all-ties    max-pool gradient sent to every cell that ties for the
                                maximum (tied max-pool case: input gradient only)
avgpool-counts-padding          "same" average pooling divides by the full window,
                                padded cells included (lenet: layer 3 output)
same-padding-top-left           "same" puts the odd padding row/column at the top/left
                                (Caffe/symmetric habit) (lenet: layer 2 output)
conv-backward-stride-off-by-one Conv2D backward scatters with stride - 1
                                (lenet: layer 2 input gradient)
dense-bias-gradient-mean        Dense bias gradient averaged over the batch instead of
                                summed (course_ffnn: layer 2 bias gradient)
l2-gradient-half                L2 adds lambda*W to the gradient, not 2*lambda*W
                                (cce with L2: 0.kernel gradient; kernels only)
l2-on-biases                    L2 over every parameter, biases included
                                (cce with L2: L2 penalty, objective, bias gradients)
cce-sum-not-mean                cross-entropy summed over the batch, not averaged
                                (cce, batch 7: data loss)
rmsprop-eps-outside-sqrt        Keras-flavour RMSprop with epsilon outside the square
                                root (torch's place) (RMSprop vs Keras: step 1)
adagrad-zero-accumulator        Keras-flavour Adagrad starting its accumulator at 0
                                (torch's default) instead of 0.1 (Adagrad vs Keras: step 1)
nesterov-as-classical           torch-flavour SGD ignoring nesterov=True
                                (Nesterov vs torch: step 1)
==============================  ====================================================
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, FrozenSet, Optional, Tuple
from unittest import mock

import numpy as np

from scratch import layers as SLy
from scratch import losses as SL
from scratch import model as SM
from scratch import optimizers as SO

from . import layers as LY
from . import losses as LS
from . import models as M
from . import optimizers as OP
from .results import FRAMEWORKS

# --------------------------------------------------------------------------- the bugs


def _conv_forward_with(kernel_of):
    """A Conv2DOp.forward that uses ``kernel_of(kernel)`` instead of the kernel."""
    original = SLy.Conv2DOp.forward

    def forward(self, x, training):
        saved = self.params["kernel"]
        self.params["kernel"] = np.ascontiguousarray(kernel_of(saved))
        try:
            return original(self, x, training)
        finally:
            self.params["kernel"] = saved

    return forward


def conv_kernel_transposed():
    # Square kernels keep their shape: the bug is silent unless values are compared.
    return mock.patch.object(SLy.Conv2DOp, "forward", _conv_forward_with(
        lambda w: w.transpose(0, 1, 3, 2).reshape(w.shape)))


def convolution_not_correlation():
    return mock.patch.object(SLy.Conv2DOp, "forward", _conv_forward_with(lambda w: w[:, :, ::-1, ::-1]))


def flatten_hwc_order():
    def forward(self, x, training):
        return x.transpose(0, 2, 3, 1).reshape(x.shape[0], -1)

    def backward(self, dout, need_dx=True):
        c, h, w = self.input_shape
        return dout.reshape(dout.shape[0], h, w, c).transpose(0, 3, 1, 2)

    return _patches((SLy.FlattenOp, "forward", forward), (SLy.FlattenOp, "backward", backward))


def _activation_backward(name, broken):
    original = SLy.ActivationOp.backward

    def backward(self, dout, need_dx=True):
        if self.act.name == name:
            return broken(self, dout)
        return original(self, dout, need_dx)

    return mock.patch.object(SLy.ActivationOp, "backward", backward)


def relu_derivative_missing():
    return _activation_backward("relu", lambda self, dout: dout)


def sigmoid_derivative_twice():
    def broken(self, dout):
        s = SLy.sigmoid(self._y)
        return dout * s * (1 - s)

    return _activation_backward("sigmoid", broken)


def softmax_diagonal_jacobian():
    return _activation_backward("softmax", lambda self, dout: dout * self._y * (1 - self._y))


def maxpool_gradient_to_all_ties():
    original = SLy.MaxPool2DOp.forward

    def forward(self, x, training):
        out = original(self, x, training)
        self._broken = (self._pad(x, -np.inf), out)
        return out

    def backward(self, dout, need_dx=True):
        xp, best = self._broken
        (sh, sw), (ho, wo) = self.strides, self.out_hw
        zero = dout.dtype.type(0)

        def every_max(i, j):
            cand = xp[:, :, SLy._strided(i, sh, ho), SLy._strided(j, sw, wo)]
            return np.where(cand == best, dout, zero)

        return self._scatter(xp.shape, dout.dtype, every_max)

    return _patches((SLy.MaxPool2DOp, "forward", forward), (SLy.MaxPool2DOp, "backward", backward))


def avgpool_counts_padding():
    def forward(self, x, training):
        xp = self._pad(x, 0)
        self._padded_shape = xp.shape
        windows = SLy._windows(xp, self.pool_size, self.strides, self.out_hw)
        return windows.sum(axis=(-2, -1)) / x.dtype.type(self.pool_size[0] * self.pool_size[1])

    return mock.patch.object(SLy.AvgPool2DOp, "forward", forward)


def same_padding_top_left():
    original = SLy.conv_output_size

    def conv_output_size(size, kernel, stride, padding):
        out, (before, after) = original(size, kernel, stride, padding)
        return out, (after, before)  # the odd cell first

    return mock.patch.object(SLy, "conv_output_size", conv_output_size)


def conv_backward_stride_off_by_one():
    original = SLy.Conv2DOp.backward

    def backward(self, dout, need_dx=True):
        saved = self.strides
        self.strides = tuple(max(s - 1, 1) for s in saved)  # only the scatter reads it
        try:
            return original(self, dout, need_dx)
        finally:
            self.strides = saved

    return mock.patch.object(SLy.Conv2DOp, "backward", backward)


def dense_bias_gradient_mean():
    def backward(self, dout, need_dx=True):
        self.grads["kernel"][...] = self._x.T @ dout
        self.grads["bias"][...] = dout.mean(axis=0)
        return dout @ self.params["kernel"].T if need_dx else None

    return mock.patch.object(SLy.DenseOp, "backward", backward)


def l2_gradient_half():
    original = SM.Sequential._loss_and_gradients

    def _loss_and_gradients(self, x, y, training):
        result = original(self, x, y, training)
        for k in self.kernel_keys:  # net effect: lambda*W, as if d/dW of lambda*W**2 were lambda*W
            self._grads[k] -= self.dtype.type(self.l2) * self._params[k]
        return result

    return mock.patch.object(SM.Sequential, "_loss_and_gradients", _loss_and_gradients)


def l2_on_biases():
    return mock.patch.object(SM.Sequential, "kernel_keys", property(lambda self: tuple(self._params)))


def cce_sum_not_mean():
    def value_and_grad(self, z, y):
        value = -np.sum(y * SLy.log_softmax(z))
        return float(value), SLy.softmax(z) * y.sum(axis=1, keepdims=True) - y

    return mock.patch.object(SL.CategoricalCrossentropy, "value_and_grad", value_and_grad)


def rmsprop_eps_outside_sqrt():
    original = SO.RMSprop._update

    def _update(self, p, g, state):
        if self.flavor != "keras":
            return original(self, p, g, state)
        s = state["square_avg"]
        s[...] = self.rho * s + (1 - self.rho) * np.square(g)
        return p - (self._lr(p.dtype) * g) / (np.sqrt(s) + self.epsilon)

    return mock.patch.object(SO.RMSprop, "_update", _update)


def adagrad_zero_accumulator():
    def _init_state(self, p):
        return {"sum": np.zeros_like(p)}

    return mock.patch.object(SO.Adagrad, "_init_state", _init_state)


def nesterov_as_classical():
    original = SO.SGD._update

    def _update(self, p, g, state):
        saved = self.nesterov
        self.nesterov = False if self.flavor == "torch" else saved
        try:
            return original(self, p, g, state)
        finally:
            self.nesterov = saved

    return mock.patch.object(SO.SGD, "_update", _update)


@contextlib.contextmanager
def _patches(*triples):
    with contextlib.ExitStack() as stack:
        for obj, name, value in triples:
            stack.enter_context(mock.patch.object(obj, name, value))
        yield


# --------------------------------------------------------------------------- catalogue
@dataclass(frozen=True)
class Breakage:
    """A planted bug, the probe that must catch it and what it must report.

    ``probe``: ``("model", "<arch>-<dtype>")``, ``("layer", "<layer case id>")``,
    ``("loss", "<loss case id>")`` or ``("trajectory", "<optimizer>")``.
    ``layer``/``quantity``: the expected report (``layer`` None: the quantity has no layer,
    or any layer). ``failing``: for layer and loss probes, exactly the quantities that must
    fail. ``frameworks``: who must see it (a flavour bug shows against its framework only).
    """

    name: str
    mistake: str
    patch: Callable[[], contextlib.AbstractContextManager]
    probe: Tuple[str, str]
    layer: Optional[int]
    quantity: str
    failing: Optional[FrozenSet[str]] = None
    frameworks: Tuple[str, ...] = FRAMEWORKS


def _f(*names):
    return frozenset(names)


BREAKAGES = (
    Breakage("conv-kernel-transposed", "Conv2D kernel read as W[o, c, j, i] (kh and kw swapped)",
             conv_kernel_transposed, ("model", "course_cnn-float64"), 0, "output"),
    Breakage("convolution-not-correlation", "Conv2D flips its kernel (convolution, not cross-correlation)",
             convolution_not_correlation, ("model", "lenet-float64"), 0, "output"),
    Breakage("flatten-hwc-order", "Flatten in H, W, C order instead of C, H, W",
             flatten_hwc_order, ("model", "course_cnn-float64"), 2, "output"),
    Breakage("relu-derivative-missing", "ReLU backward does not mask the gradient",
             relu_derivative_missing, ("model", "course_cnn-float64"), 3, "kernel gradient"),
    Breakage("sigmoid-derivative-twice", "sigmoid backward uses sigma(a) of the output a = sigma(z)",
             sigmoid_derivative_twice, ("model", "course_ffnn-float64"), 1, "kernel gradient"),
    Breakage("softmax-diagonal-jacobian", "softmax backward keeps only the diagonal y(1 - y) of the Jacobian",
             softmax_diagonal_jacobian, ("model", "course_cnn-float64"), 4, "kernel gradient"),
    Breakage("maxpool-gradient-to-all-ties", "max-pool gradient sent to every cell tied for the maximum",
             maxpool_gradient_to_all_ties, ("layer", "maxpool-ties-p2x2-s2-valid-c2-b7-7x8-float64"), None,
             "input gradient", _f("input gradient")),
    Breakage("avgpool-counts-padding", "'same' average pooling counts the padded cells",
             avgpool_counts_padding, ("model", "lenet-float64"), 3, "output"),
    Breakage("same-padding-top-left", "'same' padding puts the odd row/column at the top/left",
             same_padding_top_left, ("model", "lenet-float64"), 2, "output"),
    Breakage("conv-backward-stride-off-by-one", "Conv2D backward scatters the input gradient with stride - 1",
             conv_backward_stride_off_by_one, ("model", "lenet-float64"), 2, "input gradient"),
    Breakage("dense-bias-gradient-mean", "Dense bias gradient averaged over the batch instead of summed",
             dense_bias_gradient_mean, ("model", "course_ffnn-float64"), 2, "bias gradient"),
    Breakage("l2-gradient-half", "L2 adds lambda*W to the kernel gradient instead of 2*lambda*W",
             l2_gradient_half, ("loss", "cce-l2-float64"), 0, "kernel gradient",
             _f("0.kernel gradient", "2.kernel gradient")),
    Breakage("l2-on-biases", "L2 penalty and gradient over every parameter, biases included",
             l2_on_biases, ("loss", "cce-l2-float64"), None, "L2 penalty",
             _f("L2 penalty", "objective", "0.bias gradient", "2.bias gradient")),
    Breakage("cce-sum-not-mean", "cross-entropy summed over the batch instead of averaged",
             cce_sum_not_mean, ("loss", "cce-float64"), None, "data loss",
             _f("data loss", "loss gradient (logits)", "0.kernel gradient", "0.bias gradient",
                "2.kernel gradient", "2.bias gradient")),
    Breakage("rmsprop-eps-outside-sqrt", "Keras-flavour RMSprop adds epsilon outside the square root",
             rmsprop_eps_outside_sqrt, ("trajectory", "rmsprop"), None, "param after step 1",
             frameworks=("keras",)),
    Breakage("adagrad-zero-accumulator", "Keras-flavour Adagrad starts its accumulator at 0, not 0.1",
             adagrad_zero_accumulator, ("trajectory", "adagrad"), None, "param after step 1",
             frameworks=("keras",)),
    Breakage("nesterov-as-classical", "torch-flavour SGD ignores nesterov=True",
             nesterov_as_classical, ("trajectory", "nesterov"), None, "param after step 1",
             frameworks=("torch",)),
)

NAMES = tuple(b.name for b in BREAKAGES)


def get(name: str) -> Breakage:
    for b in BREAKAGES:
        if b.name == name:
            return b
    raise KeyError(f"unknown breakage {name!r}; known: {', '.join(NAMES)}")


# --------------------------------------------------------------------------- detection
@dataclass(frozen=True)
class Finding:
    """What the checker reported for one framework: layer, quantity, the failing
    quantities (layer/loss probes) and the message of the first failing result."""

    framework: str
    layer: Optional[int]
    quantity: Optional[str]
    failing: FrozenSet[str]
    message: str


def _run_probe(b: Breakage, framework: str):
    kind, target = b.probe
    if kind == "model":
        return M.run_model_parity(target, (framework,))
    if kind == "layer":
        return LY.run_layer_case(target, (framework,))
    if kind == "loss":
        return LS.run_loss_case(target, (framework,))
    return OP.run_trajectory(target, framework)


def _finding(b: Breakage, framework: str, results) -> Finding:
    failing = frozenset(r.quantity for r in results if not r.passed)
    kind = b.probe[0]
    if kind == "model":
        d = M.first_disagreeing_layer(results, framework)
        if d is None:
            return Finding(framework, None, None, failing, "no disagreement")
        return Finding(framework, d.layer, d.quantity, failing, d.message())
    if kind == "trajectory":
        r = OP.first_failing_step(results)
        if r is None:
            return Finding(framework, None, None, failing, "no disagreement")
        return Finding(framework, r.layer, " ".join(r.quantity.split()[:4]), failing, r.message())
    first = next((r for r in results if not r.passed), None)
    if first is None:
        return Finding(framework, None, None, failing, "no disagreement")
    quantity = first.quantity.split(".", 1)[1] if first.layer is not None else first.quantity
    return Finding(framework, first.layer, quantity, failing, first.message())


def detect(b: Breakage, framework: str) -> Tuple[Finding, Finding]:
    """(finding without the bug, finding with it) for ``framework``."""
    clean = _finding(b, framework, _run_probe(b, framework))
    with b.patch():
        broken = _finding(b, framework, _run_probe(b, framework))
    return clean, broken


def check(b: Breakage, framework: str) -> Finding:
    """Raise ``AssertionError`` unless the probe passes clean and, with the bug, reports
    ``b.layer`` and ``b.quantity`` (and exactly ``b.failing``). Returns the finding."""
    clean, broken = detect(b, framework)
    assert clean.quantity is None, f"{b.name}: the probe {b.probe} fails without the bug: {clean.message}"
    assert broken.quantity is not None, f"{b.name}: the parity checker did not notice it ({framework}, {b.probe})"
    where = f"{b.name} ({framework}): reported {broken.message}"
    assert broken.quantity == b.quantity, f"{where}; expected quantity {b.quantity!r}"
    if b.layer is not None:
        assert broken.layer == b.layer, f"{where}; expected layer {b.layer}"
    if b.failing is not None:
        assert broken.failing == b.failing, f"{where}; failing {sorted(broken.failing)}, expected {sorted(b.failing)}"
    return broken
