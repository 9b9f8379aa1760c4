"""The scratch ``Sequential`` model: forward, backward, L2, training loop.

Data are NCHW arrays of the model's dtype; parameters and gradients are dicts with
dotted keys ``"<spec index>.kernel"`` / ``"<spec index>.bias"`` in the canonical layout
(see docs/DESIGN.md, 'Canonical layout').

The objective (see docs/DESIGN.md, 'The objective and L2') is::

    mean_n loss(f(x_n), y_n) + lambda * sum over kernels of sum(W**2)

so L2 adds ``2 * lambda * W`` to each kernel gradient and nothing to biases, which is
what ``keras.regularizers.l2(lambda)`` does.
"""
from __future__ import annotations

import math

import numpy as np

from . import losses as L
from . import optimizers as O
from . import spec as S
from .checks import check_dtype, check_input, check_input_shape, check_l2, check_seed
from .data import accuracy, as_targets
from .layers import ActivationOp, make_ops
from .trainer import run_epochs


class Sequential:
    """A stack of spec layers run in NumPy.

    Parameters
    ----------
    layers : sequence of spec layers (:mod:`scratch.spec`)
    input_shape : tuple
        One sample's shape, ``(C, H, W)`` for images or ``(F,)`` for flat features.
    dtype : numpy float32 or float64; kept end to end.
    seed : int
        Seeds the Glorot-uniform initialisation (and dropout masks).
    """

    def __init__(self, layers, input_shape, *, dtype=np.float64, seed: int = 0):
        self.layers = S.validate(layers)
        self.dtype = check_dtype(dtype)
        self.seed = check_seed(seed)
        self.input_shape = shape = check_input_shape(input_shape)
        self._dropout_rng = np.random.default_rng([self.seed, 1])
        self._forwarded = False  # backward needs a forward pass through every op first
        self.ops = []
        for i, layer in enumerate(self.layers):
            self.ops.extend(make_ops(i, layer, shape, self.dtype, self._dropout_rng))
            shape = self.ops[-1].output_shape
        self.output_shape = shape
        # Live views: the same arrays the ops hold, so an in-place optimizer step updates them.
        self._params = {f"{op.index}.{k}": v for op in self.ops for k, v in op.params.items()}
        self._grads = {f"{op.index}.{k}": v for op in self.ops for k, v in op.grads.items()}
        self._initialise(np.random.default_rng(self.seed))
        self.loss = None
        self.optimizer = None
        self.l2 = 0.0

    # ------------------------------------------------------------------ parameters
    def _initialise(self, rng: np.random.Generator):
        """Glorot-uniform kernels (limit sqrt(6 / (fan_in + fan_out)), Keras's fans), zero
        biases; drawn in float64 in layer order so float32 and float64 models of the same
        seed hold the same weights up to rounding."""
        for op in self.ops:
            if "kernel" in op.params:
                fan_in, fan_out = op.fans()
                limit = math.sqrt(6.0 / (fan_in + fan_out))
                op.params["kernel"][...] = rng.uniform(-limit, limit, size=op.params["kernel"].shape)
                op.params["bias"][...] = 0

    @property
    def kernel_keys(self) -> tuple:
        return tuple(k for k in self._params if k.endswith(".kernel"))

    def parameters(self) -> dict:
        """The live parameter arrays (not copies): key -> array."""
        return self._params

    def state_dict(self) -> dict:
        """Copies of the parameters, key -> array, canonical layout."""
        return {k: v.copy() for k, v in self._params.items()}

    def gradients(self) -> dict:
        """Copies of the gradients of the last backward pass (L2 included after a training step)."""
        return {k: v.copy() for k, v in self._grads.items()}

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy ``state`` into the model after checking every key, shape and dtype.

        ``strict``: missing and unexpected keys are errors (otherwise missing keys keep
        their values and unexpected keys are reported). Nothing is copied unless all
        checks pass.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict of arrays, got {type(state).__name__}")
        missing = [k for k in self._params if k not in state]
        extra = [k for k in state if k not in self._params]
        if extra or (strict and missing):
            raise KeyError(
                f"state dict does not match the model: missing keys {missing}, unexpected keys {extra}; "
                f"the model's keys are {list(self._params)}"
            )
        for k, v in state.items():
            mine = self._params[k]
            arr = np.asarray(v)
            if arr.shape != mine.shape:
                raise ValueError(f"{k}: shape {arr.shape} does not match the model's {mine.shape}")
            if arr.dtype != mine.dtype:
                raise TypeError(f"{k}: dtype {arr.dtype} does not match the model's {mine.dtype}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{k}: contains NaN or inf")
        for k, v in state.items():
            self._params[k][...] = v

    def l2_penalty(self) -> float:
        """``l2 * sum(W**2)`` over kernels (0 when ``l2`` is 0)."""
        if not self.l2:
            return 0.0
        return self.l2 * float(sum(np.sum(self._params[k] ** 2) for k in self.kernel_keys))

    # ------------------------------------------------------------------ checks
    def check_input(self, x, name: str = "x") -> np.ndarray:
        """``x`` as an array, after checking rank, shape, dtype and finiteness (:func:`scratch.checks.check_input`)."""
        return check_input(x, self.input_shape, self.dtype, name)

    # ------------------------------------------------------------------ passes
    def _run(self, x, training, ops):
        for op in ops:
            x = op.forward(x, training)
        self._forwarded = self._forwarded or len(ops) == len(self.ops)
        return x

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Outputs (N,) + output_shape for inputs (N,) + input_shape."""
        return self._run(self.check_input(x), training, self.ops)

    __call__ = forward

    def forward_layers(self, x: np.ndarray, training: bool = False) -> list:
        """The output of every spec entry (after its fused activation), in order."""
        x = self.check_input(x)
        outs = []
        for i, op in enumerate(self.ops):
            x = op.forward(x, training)
            if i + 1 == len(self.ops) or self.ops[i + 1].index != op.index:
                outs.append(x)
        self._forwarded = True
        return outs

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Gradient with respect to the input of the last ``forward``; fills ``gradients()``.

        ``dout`` is the gradient of a scalar with respect to the outputs, (N,) + output_shape.
        """
        dout = np.asarray(dout)
        if not self._forwarded:
            raise RuntimeError("backward: call forward(x) first; backward differentiates the last forward pass")
        if dout.shape[1:] != self.output_shape or dout.dtype != self.dtype:
            raise ValueError(f"dout: expected shape (N,) + {self.output_shape} and dtype {self.dtype}, "
                             f"got {dout.shape} {dout.dtype}")
        return self._backward(dout, self.ops)

    def _backward(self, dout, ops, need_dx=True):
        for k in range(len(ops) - 1, -1, -1):
            dout = ops[k].backward(dout, need_dx or k > 0)
        return dout

    # ------------------------------------------------------------------ training
    def compile(self, loss="categorical_crossentropy", optimizer="sgd", *, learning_rate: float = 0.01,
                l2: float = 0.0, flavor: str = "keras", **optimizer_kwargs) -> "Sequential":
        """Set the loss, the optimizer (an instance or a name for ``scratch.optimizers.make``)
        and the L2 factor ``l2`` (Keras's ``l2(lambda)``: kernels only)."""
        loss = L.get(loss)
        if loss.fused_activation:
            last = self.ops[-1]
            if not (isinstance(last, ActivationOp) and last.act.name == loss.fused_activation):
                raise ValueError(
                    f"loss {loss.name!r} needs the model to end in a {loss.fused_activation} activation "
                    f"(it is fused with the loss); the last op is {last.name}"
                )
        l2 = check_l2(l2)
        if isinstance(optimizer, str):
            if flavor == "keras":
                # The suite's Keras trainer keeps its learning rate in the model's dtype
                # (keras_models.make_optimizer); mirror that unless told otherwise.
                optimizer_kwargs.setdefault("lr_dtype", self.dtype.name)
            optimizer = O.make(optimizer, learning_rate, flavor=flavor, **optimizer_kwargs)
        elif not isinstance(optimizer, O.Optimizer):
            raise TypeError(f"optimizer: expected a name or a scratch.optimizers.Optimizer, got {optimizer!r}")
        self.loss, self.optimizer, self.l2 = loss, optimizer, l2
        return self

    def _require_compiled(self):
        if self.loss is None:
            raise RuntimeError("the model is not compiled: call model.compile(loss=..., optimizer=..., l2=...) first")

    def targets(self, y, name: str = "y") -> np.ndarray:
        """``y`` as (N, outputs) targets of the model's dtype (integer labels are one-hot encoded)."""
        return as_targets(y, self.output_shape[0], self.dtype, name=name)

    def _loss_forward(self, x, training):
        """(the loss's input a, model outputs): logits when the loss is fused."""
        if self.loss.fused_activation:
            z = self._run(x, training, self.ops[:-1])
            return z, None
        out = self._run(x, training, self.ops)
        return out, out

    def loss_and_gradients(self, x, y, training: bool = True):
        """Objective (data loss + L2 penalty) of one batch; fills ``gradients()`` (L2 included).

        Returns ``(objective, data_loss)``. Does not update the parameters.
        """
        self._require_compiled()
        x = self.check_input(x)
        y = self.targets(y)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"y: {y.shape[0]} targets for {x.shape[0]} inputs")
        return self._loss_and_gradients(x, y, training)

    def _loss_and_gradients(self, x, y, training):
        a, _ = self._loss_forward(x, training)
        data_loss, da = self.loss.value_and_grad(a, y)
        self._backward(da, self.ops[:-1] if self.loss.fused_activation else self.ops, need_dx=False)
        penalty = 0.0
        if self.l2:
            two_l2 = self.dtype.type(2 * self.l2)
            for k in self.kernel_keys:
                w = self._params[k]
                self._grads[k] += two_l2 * w
                penalty += float(np.sum(w * w))
            penalty *= self.l2
        return data_loss + penalty, data_loss

    def train_step(self, x, y) -> float:
        """One optimizer step on a batch; returns the objective before the step."""
        self._require_compiled()
        x = self.check_input(x)
        y = self.targets(y)
        return self._train_step(x, y)

    def _train_step(self, x, y) -> float:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            objective, _ = self._loss_and_gradients(x, y, True)
            self.optimizer.step(self._params, self._grads)
        return objective

    def train_epoch(self, x, y, batches) -> list:
        """One optimizer step per index array of ``batches`` on already-checked ``x`` and
        targets ``y`` (N, outputs); the objective of each batch before its step
        (:class:`scratch.trainer.EpochTrainer`)."""
        return [self._train_step(x[idx], y[idx]) for idx in batches]

    def predict(self, x, batch_size: int | None = 1000) -> np.ndarray:
        """Outputs in batches of ``batch_size`` (None: all at once)."""
        x = self.check_input(x)
        if batch_size is None or batch_size >= x.shape[0]:
            return self._run(x, False, self.ops)
        return np.concatenate([self._run(x[i:i + batch_size], False, self.ops)
                               for i in range(0, x.shape[0], batch_size)])

    def evaluate(self, x, y, batch_size: int | None = 1000) -> dict:
        """``{"loss": mean data loss (no L2 term), "accuracy": fraction correct}``."""
        self._require_compiled()
        x = self.check_input(x)
        y = self._matching_targets(x, y)
        return self.evaluate_batches(x, y, batch_size)

    def _matching_targets(self, x, y, name: str = "y"):
        y = self.targets(y, name)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{name}: {y.shape[0]} targets for {x.shape[0]} inputs")
        return y

    def evaluate_batches(self, x, y, batch_size) -> dict:
        """:meth:`evaluate` on already-checked ``x`` and targets ``y`` (N, outputs), in
        chunks of ``batch_size`` (None: all at once) (:class:`scratch.trainer.EpochTrainer`)."""
        n = x.shape[0]
        step = n if batch_size is None else batch_size
        total, outs = 0.0, []
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            for i in range(0, n, step):
                a, _ = self._loss_forward(x[i:i + step], False)
                value, _ = self.loss.value_and_grad(a, y[i:i + step])
                total += value * a.shape[0]
                outs.append(self.loss.outputs(a))
        return {"loss": total / n, "accuracy": accuracy(np.concatenate(outs), y)}

    def fit(self, x, y, *, epochs: int = 1, batch_size: int = 32, seed: int = 0, shuffle: bool = True,
            validation_data=None, progress: bool = False, on_epoch_end=None,
            evaluate_train: bool = True) -> list:
        """Train for ``epochs`` over the shared seeded batch order (:func:`scratch.data.epoch_batches`).

        Returns one dict per epoch: ``epoch`` (1-based), ``loss`` (mean objective over the
        epoch's batches), ``train_loss``, ``train_accuracy`` and, with ``validation_data``,
        ``test_loss``, ``test_accuracy`` (data loss, after the epoch), and ``diverged``.
        Training stops after the first epoch whose objective is NaN or inf; that row has
        ``diverged=True``. ``on_epoch_end(row)`` is called after each epoch.
        ``evaluate_train=False`` skips the train-set evaluation (no ``train_*`` keys; benchmarks).
        """
        self._require_compiled()
        x = self.check_input(x)
        y = self._matching_targets(x, y)  # before any update
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data: expected a pair (x, y), got "
                                 f"{type(validation_data).__name__} of length {len(validation_data)}"
                                 if hasattr(validation_data, "__len__") else
                                 f"validation_data: expected a pair (x, y), got {validation_data!r}")
            vx = self.check_input(validation_data[0], "validation x")
            val = (vx, self._matching_targets(vx, validation_data[1], "validation y"))
        return run_epochs(self, x, y, epochs=epochs, batch_size=batch_size, seed=seed, shuffle=shuffle,
                          validation=val, progress=progress, on_epoch_end=on_epoch_end,
                          evaluate_train=evaluate_train)


def build(layers, input_shape, *, dtype=np.float64, seed: int = 0) -> Sequential:
    """Build a scratch :class:`Sequential` from spec layers; see its docstring."""
    return Sequential(layers, input_shape, dtype=dtype, seed=seed)


class Trainer:
    """The training contract shared by all three frameworks, for the scratch engine.

    ``keras_models.Trainer`` and ``torch_models.Trainer`` take the same arguments and
    give the same methods: ``train_step``, ``fit``, ``evaluate``, ``predict``,
    ``state_dict`` and ``load_state_dict``, all on canonical NCHW NumPy arrays.

    ``flavor`` picks whose optimizer rule the scratch engine follows ("keras" or
    "torch"); ``init`` is accepted for symmetry ("scratch" and "native" are the same
    thing here).
    """

    def __init__(self, layers, input_shape, *, loss="categorical_crossentropy", optimizer="sgd",
                 learning_rate: float = 0.01, l2: float = 0.0, dtype="float64", seed: int = 0,
                 init: str = "scratch", flavor: str = "keras", **optimizer_kwargs):
        if init not in ("scratch", "native"):
            raise ValueError(f"init: unknown {init!r}; allowed: scratch, native")
        self.model = build(layers, input_shape, dtype=dtype, seed=seed)
        self.model.compile(loss, optimizer, learning_rate=learning_rate, l2=l2, flavor=flavor, **optimizer_kwargs)
        self.layers, self.input_shape = self.model.layers, self.model.input_shape

    def train_step(self, x, y) -> float:
        return self.model.train_step(x, y)

    def fit(self, x, y, **kwargs) -> list:
        return self.model.fit(x, y, **kwargs)

    def evaluate(self, x, y) -> dict:
        return self.model.evaluate(x, y)

    def predict(self, x):
        return self.model.predict(x)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state)
