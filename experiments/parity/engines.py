"""Run one network in one framework and return what the parity suite compares, in the
scratch (canonical) layout.

Every engine takes the same things: spec ``layers``, the canonical ``input_shape``, a
``dtype`` name, a scratch ``state`` dict (the weights all frameworks load), NCHW NumPy
inputs ``x`` and either an upstream gradient ``dout`` (:meth:`trace`) or targets ``y``
(:meth:`loss_trace`). It returns:

* :class:`Trace`: the output of every spec entry, the gradient with respect to every
  entry's output, the input gradient and every parameter gradient (``"0.kernel"``...);
* :class:`LossTrace`: data loss, L2 penalty, objective, the gradient of the loss with
  respect to its input (the logits when the loss is fused with a final softmax/sigmoid,
  else the outputs), the model output and the parameter gradients of the objective.

Conversions (docs/DESIGN.md, "Canonical layout"), never re-derived here:

* Keras: NCHW <-> NHWC for data, outputs and gradients; between a Flatten of an image and
  the next Dense, Keras's features are in H, W, C order, so outputs and gradients there
  are permuted with :func:`keras_models.flatten_permutation`; parameter gradients
  go through the same per-weight conversion as :func:`keras_models.to_scratch`
  (``keras_models.weight_plan`` and ``to_scratch_array``: the conv-kernel transpose
  and the Dense-after-Flatten row permutation apply to gradients exactly as to weights).
* torch: parameter gradients through ``torch_models.weight_plan``, the table
  :func:`torch_models.to_scratch` uses (Linear weights transposed).

Frameworks are imported when an engine is first made (:func:`make`), never at import
time of this module. Built models are cached per (layers, input shape, dtype, l2): a
trace only loads the weights, so hundreds of cases share a few builds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

import scratch
from scratch import losses as SL
from scratch import spec as S

ENGINES = ("scratch", "torch", "keras")


@dataclass
class Trace:
    """Forward and backward of one batch under an upstream gradient, canonical layout."""

    outputs: list  # per spec entry
    output_grads: list  # gradient w.r.t. each entry's output (the last one is dout)
    input_grad: np.ndarray
    param_grads: dict  # "0.kernel" -> array


@dataclass
class LossTrace:
    data_loss: np.ndarray  # 0-d arrays of the model's dtype
    penalty: np.ndarray
    objective: np.ndarray
    loss_input_grad: np.ndarray  # d objective / d logits (fused) or d outputs
    output: np.ndarray
    param_grads: dict


def _scalar(value, dtype) -> np.ndarray:
    return np.asarray(value, dtype=np.dtype(dtype))


# --------------------------------------------------------------------------- scratch
class ScratchEngine:
    """The engine under test. Never cached: a planted bug (breakages) must show."""

    name = "scratch"

    def model(self, layers, input_shape, dtype, state):
        m = scratch.build(layers, input_shape, dtype=dtype, seed=0)
        m.load_state_dict(state)
        return m

    def trace(self, layers, input_shape, dtype, state, x, dout, training=False) -> Trace:
        m = self.model(layers, input_shape, dtype, state)
        h = m.check_input(x)
        n = len(m.layers)
        outs = [None] * n
        for op in m.ops:  # op by op (not forward_layers) so patched ops are what runs
            h = op.forward(h, training)
            outs[op.index] = h
        grads = [None] * n
        g = np.asarray(dout, dtype=m.dtype)
        for op in reversed(m.ops):
            if grads[op.index] is None:
                grads[op.index] = g
            g = op.backward(g)
        return Trace(outs, grads, g, m.gradients())

    def loss_trace(self, layers, input_shape, dtype, state, x, y, loss, l2) -> LossTrace:
        m = self.model(layers, input_shape, dtype, state)
        m.compile(loss, "sgd", learning_rate=0.01, l2=l2)
        objective, data = m.loss_and_gradients(x, y)
        params = m.gradients()
        fn = m.loss
        ops = m.ops[:-1] if fn.fused_activation else m.ops
        a = x
        for op in ops:
            a = op.forward(a, False)
        _, da = fn.value_and_grad(a, m.targets(y))
        return LossTrace(_scalar(data, dtype), _scalar(m.l2_penalty(), dtype), _scalar(objective, dtype), da,
                         m.forward(x), params)


# --------------------------------------------------------------------------- torch
class TorchEngine:
    name = "torch"

    def __init__(self):
        import torch
        import torch.nn.functional as F

        import torch_models

        self.torch, self.F, self.tm = torch, F, torch_models
        self._plan = torch_models.weight_plan
        self._models = {}

    def model(self, layers, input_shape, dtype, state):
        key = (tuple(layers), tuple(input_shape), dtype)
        if key not in self._models:
            self._models[key] = self.tm.build(layers, input_shape, dtype=dtype).eval()
        m = self._models[key]
        self.tm.from_scratch(m, state)
        m.zero_grad(set_to_none=True)
        return m

    def _tensor(self, a):
        return self.torch.from_numpy(np.array(a, copy=True))

    def _forward(self, m, xt, split_last=False):
        """Outputs of every entry; with ``split_last`` also the last entry's pre-activation."""
        h, outs, pre = xt, [], None
        for e in self.tm.entries(m):
            for part in (e.pad, e.module):
                if part is not None:
                    h = part(h)
            pre = h
            if e.act is not None:
                h = e.act(h)
            outs.append(h)
        return (outs, pre) if split_last else outs

    def _grads(self, m, grads):
        out = {}
        for (key, param, transposed, _), g in zip(self._plan(m)[0], grads):
            g = g.detach().numpy()
            out[key] = np.ascontiguousarray(g.T if transposed else g)
        return out

    def _params(self, m):
        return [param for _, param, _, _ in self._plan(m)[0]]

    def trace(self, layers, input_shape, dtype, state, x, dout) -> Trace:
        torch = self.torch
        m = self.model(layers, input_shape, dtype, state)
        xt = self._tensor(x).requires_grad_(True)
        outs = self._forward(m, xt)
        params = self._params(m)
        srcs = [xt] + outs[:-1] + params
        gs = torch.autograd.grad(outs[-1], srcs, grad_outputs=self._tensor(dout), allow_unused=True)
        gs = [torch.zeros_like(s) if g is None else g for s, g in zip(srcs, gs)]
        n = len(outs)
        grads = [g.detach().numpy().copy() for g in gs[1:n]] + [np.array(dout, copy=True)]
        return Trace([o.detach().numpy().copy() for o in outs], grads, gs[0].detach().numpy().copy(),
                     self._grads(m, gs[n:]))

    def loss_trace(self, layers, input_shape, dtype, state, x, y, loss, l2) -> LossTrace:
        torch, F = self.torch, self.F
        m = self.model(layers, input_shape, dtype, state)
        xt = self._tensor(x)
        yt = self._tensor(y)
        outs, logits = self._forward(m, xt, split_last=True)
        out = outs[-1]
        if loss == "categorical_crossentropy":
            data, loss_input = F.cross_entropy(logits, yt), logits  # probabilities as targets: batch mean
        elif loss == "binary_crossentropy":
            data, loss_input = F.binary_cross_entropy_with_logits(logits, yt), logits
        else:
            data, loss_input = F.mse_loss(out, yt), out
        params = self._params(m)
        kernels = [p for (key, p, _, _) in self._plan(m)[0] if key.endswith(".kernel")]
        penalty = sum(w.square().sum() for w in kernels) * l2 if l2 else torch.zeros((), dtype=out.dtype)
        objective = data + penalty if l2 else data
        gs = torch.autograd.grad(objective, [loss_input] + params)
        return LossTrace(data.detach().numpy().copy(), penalty.detach().numpy().copy(),
                         objective.detach().numpy().copy(), gs[0].numpy().copy(), out.detach().numpy().copy(),
                         self._grads(m, gs[1:]))


# --------------------------------------------------------------------------- keras
class KerasEngine:
    name = "keras"

    def __init__(self):
        from experiments.runtime import import_framework

        km = import_framework("keras")  # imports torch first when it is installed
        import keras
        import tensorflow as tf

        from keras_models import builder

        self.km, self.keras, self.tf = km, keras, tf
        self._entry_shapes = builder.entry_shapes
        self._plan, self._to_scratch_array = km.weight_plan, km.to_scratch_array
        self._flatten_permutation = km.flatten_permutation
        self._models = {}

    def model(self, layers, input_shape, dtype, state, l2=0.0):
        key = (tuple(layers), tuple(input_shape), dtype, float(l2))
        if key not in self._models:
            m = self.km.build(layers, input_shape, dtype=dtype, l2=l2)
            self._models[key] = (m, self._plan(m), self._orders(layers, input_shape))
        m, plan, orders = self._models[key]
        self.km.from_scratch(m, state)
        return m, plan, orders

    def _orders(self, layers, input_shape):
        """How Keras lays out each entry's output: "image" (NHWC), None (same as scratch) or
        a permutation ``perm`` (Keras feature p is scratch feature perm[p])."""
        orders, current = [], "image" if len(input_shape) == 3 else None
        for layer, (shape_in, shape_out) in zip(layers, self._entry_shapes(layers, input_shape)):
            if isinstance(layer, S.Flatten):
                current = self._flatten_permutation(shape_in) if len(shape_in) == 3 else current
            elif isinstance(layer, S.Dense):
                current = None
            orders.append("image" if len(shape_out) == 3 else current)
        return orders

    @staticmethod
    def _to_canonical(a, order):
        a = np.asarray(a)
        if isinstance(order, str):
            return np.ascontiguousarray(a.transpose(0, 3, 1, 2))
        if order is not None:
            return np.ascontiguousarray(a[:, np.argsort(order)])
        return np.array(a, copy=True)

    @staticmethod
    def _to_keras(a, order):
        if isinstance(order, str):
            return np.ascontiguousarray(a.transpose(0, 2, 3, 1))
        if order is not None:
            return np.ascontiguousarray(a[:, order])
        return a

    def _weights(self, plan):
        return [item["layer"].kernel for item in plan], [item["layer"].bias for item in plan]

    def _param_grads(self, plan, kernel_grads, bias_grads):
        out = {}
        for item, gk, gb in zip(plan, kernel_grads, bias_grads):
            i = item["index"]
            out[f"{i}.kernel"] = self._to_scratch_array(item, "kernel", np.asarray(gk))
            out[f"{i}.bias"] = self._to_scratch_array(item, "bias", np.asarray(gb))
        return out

    def _run(self, m, xt):
        h, outs = xt, []
        for layer in m.layers:  # entry i is model.layers[i]
            h = layer(h, training=False)
            outs.append(h)
        return outs

    def trace(self, layers, input_shape, dtype, state, x, dout) -> Trace:
        tf = self.tf
        m, plan, orders = self.model(layers, input_shape, dtype, state)
        xt = tf.constant(self._to_keras(x, "image" if x.ndim == 4 else None))
        kernels, biases = self._weights(plan)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            outs = self._run(m, xt)
        n = len(outs)
        srcs = [xt] + outs[:-1] + kernels + biases
        gs = tape.gradient(outs[-1], srcs, output_gradients=tf.constant(self._to_keras(dout, orders[-1])),
                           unconnected_gradients=tf.UnconnectedGradients.ZERO)
        in_order = "image" if x.ndim == 4 else None
        grads = [self._to_canonical(g, o) for g, o in zip(gs[1:n], orders[:-1])] + [np.array(dout, copy=True)]
        k = len(kernels)
        return Trace([self._to_canonical(o, order) for o, order in zip(outs, orders)], grads,
                     self._to_canonical(gs[0], in_order), self._param_grads(plan, gs[n:n + k], gs[n + k:]))

    def loss_trace(self, layers, input_shape, dtype, state, x, y, loss, l2) -> LossTrace:
        tf, keras = self.tf, self.keras
        m, plan, orders = self.model(layers, input_shape, dtype, state, l2=l2)
        fn = {"categorical_crossentropy": keras.losses.categorical_crossentropy,
              "binary_crossentropy": keras.losses.binary_crossentropy,
              "mse": keras.losses.mean_squared_error}[loss]
        fused = SL.get(loss).fused_activation
        xt = tf.constant(self._to_keras(x, "image" if x.ndim == 4 else None))
        yt = tf.constant(y)
        kernels, biases = self._weights(plan)
        with tf.GradientTape() as tape:
            out = self._run(m, xt)[-1]
            loss_input = out
            if fused:
                # keras.activations.softmax/sigmoid keep the logits on the output; the TF
                # backend's loss functions use them (the fused, unclipped path).
                loss_input = getattr(out, "_keras_logits", None)
                if loss_input is None:
                    raise RuntimeError(f"Keras did not keep the logits of the final {fused}: the loss would "
                                       "not be fused")
            data = tf.reduce_mean(fn(yt, out))
            objective = data + tf.add_n(m.losses) if l2 else data
        gs = tape.gradient(objective, [loss_input] + kernels + biases)
        k = len(kernels)
        # The penalty by Keras's own stock regularizer (lambda is a power of two in the
        # suite, which float32 holds exactly; see keras_models.ExactL2 for other values).
        if l2:
            reg = keras.regularizers.L2(l2)
            penalty = np.asarray(tf.add_n([reg(w) for w in kernels]))
        else:
            penalty = _scalar(0.0, dtype)
        return LossTrace(np.asarray(data), penalty, np.asarray(objective), np.asarray(gs[0]),
                         self._to_canonical(out, orders[-1]), self._param_grads(plan, gs[1:1 + k], gs[1 + k:]))


_CACHE: dict = {}


def make(name: str):
    """The engine ``name`` (one per process: framework engines cache their built models)."""
    if name not in ENGINES:
        raise ValueError(f"engine: unknown {name!r}; allowed: {', '.join(ENGINES)}")
    if name not in _CACHE:
        _CACHE[name] = {"scratch": ScratchEngine, "torch": TorchEngine, "keras": KerasEngine}[name]()
    return _CACHE[name]


def skip_reason(name: str) -> Optional[str]:
    """Why framework ``name`` cannot run here (a package is not installed), or None."""
    from experiments.runtime import missing

    absent = missing(name)
    return None if absent is None else f"the package {absent!r} is not installed"
