"""Run one spec layer in the scratch engine on given canonical arrays, float64.

:class:`LayerRun` builds a one-layer :class:`scratch.model.Sequential`, loads the given
parameters, runs the forward pass and keeps the ops, so hypotheses can re-run the
backward pass from the output (``backward``) or from the pre-activation gradient
(``backward_linear``), with a changed kernel or stride where the mistake needs one.

Quantities (canonical layouts): ``output`` (N, *output_shape), ``input gradient``
(N, *input_shape), ``kernel gradient`` and ``bias gradient`` (the parameter's shape).
"""
from __future__ import annotations

import contextlib

import numpy as np

import scratch
from scratch import spec as S

QUANTITIES = ("output", "input gradient", "kernel gradient", "bias gradient")


def layer_sizes(layer, input_shape, n: int) -> dict:
    """Sizes a fitted factor may be named after: N, C, kh, kw, filters (Conv2D), pool sizes, K (Dense)."""
    sizes = {"N": n}
    if len(input_shape) == 3:
        sizes["C"] = input_shape[0]
    if isinstance(layer, S.Conv2D):
        sizes.update(kh=layer.kernel_size[0], kw=layer.kernel_size[1], filters=layer.filters)
    elif isinstance(layer, (S.MaxPool2D, S.AvgPool2D)):
        sizes.update(kh=layer.pool_size[0], kw=layer.pool_size[1])
    elif isinstance(layer, S.Dense):
        sizes.update(K=layer.units, F=input_shape[0])
    if sizes.get("kh") == sizes.get("kw") and "kw" in sizes:
        del sizes["kw"]  # one name for a square window
    return sizes


class LayerRun:
    """One forward pass of ``layer`` on ``x`` with ``params``; backward on demand.

    ``kernel``/``bias`` override the given parameters for the forward pass (a mistake
    that reads its weights differently); ``patch`` is a context manager (a planted
    breakage) active while the model is built and run.
    """

    def __init__(self, layer, input_shape, x, params, *, kernel=None, bias=None, patch=None, x_override=None):
        self.layer, self.input_shape = layer, tuple(input_shape)
        self._patch = patch
        with self._active():
            self.model = scratch.build((layer,), self.input_shape, dtype=np.float64)
            state = {}
            for key in self.model.parameters():
                name = key.split(".", 1)[1]
                value = {"kernel": kernel, "bias": bias}[name]
                if value is None:
                    value = params.get(name) if params else None
                state[key] = np.asarray(value, dtype=np.float64) if value is not None else \
                    np.zeros_like(self.model.parameters()[key])
            if state:
                self.model.load_state_dict(state)
            self.ops = self.model.ops
            xin = np.asarray(x if x_override is None else x_override, dtype=np.float64)
            out = xin
            self.pre = None
            for op in self.ops:
                if op is self.ops[-1] and len(self.ops) > 1:
                    self.pre = out
                out = op.forward(out, False)
            self.output = out

    def _active(self):
        return self._patch() if self._patch is not None else contextlib.nullcontext()

    @property
    def linear(self):
        return self.ops[0]

    @property
    def activation(self):
        return self.ops[1] if len(self.ops) > 1 else None

    def _collect(self, dx) -> dict:
        out = {"output": self.output, "input gradient": dx}
        for k, v in self.linear.grads.items():
            out[f"{k} gradient"] = v.copy()
        return out

    def backward(self, dy, *, pre_activation_grad=False) -> dict:
        """All quantities after a backward pass from ``dy`` (dL/d output, or dL/d pre-activation)."""
        with self._active():
            g = np.asarray(dy, dtype=np.float64)
            ops = self.ops[:1] if pre_activation_grad else self.ops
            for op in reversed(ops):
                g = op.backward(g, True)
            return self._collect(g)

    def backward_linear(self, dz, *, kernel=None, strides=None) -> dict:
        """Backward through the layer itself (not its activation) from ``dz``; ``kernel`` and
        ``strides`` replace the layer's for this pass only (the input-gradient scatter)."""
        op = self.linear
        saved_k = op.params.get("kernel")
        saved_s = getattr(op, "strides", None)
        try:
            if kernel is not None:
                op.params["kernel"] = np.ascontiguousarray(kernel, dtype=np.float64)
            if strides is not None:
                op.strides = strides
            with self._active():
                dx = op.backward(np.asarray(dz, dtype=np.float64), True)
            return self._collect(dx)
        finally:
            if kernel is not None:
                op.params["kernel"] = saved_k
            if strides is not None:
                op.strides = saved_s

    def dz(self, dy, pre_activation_grad=False) -> np.ndarray:
        """The correct gradient with respect to the pre-activation."""
        if pre_activation_grad or self.activation is None:
            return np.asarray(dy, dtype=np.float64)
        with self._active():
            return self.activation.backward(np.asarray(dy, dtype=np.float64), True)
