"""Training a Keras model with the suite's objective, optimizers and batch order.

:class:`Trainer` keeps the contract shared with the scratch engine and torch_models. Its
epoch loop is :func:`scratch.trainer.run_epochs`; the Keras side implements its
:class:`scratch.trainer.EpochTrainer` interface: ``train_epoch`` (one compiled TensorFlow
function per epoch, traced once per Trainer) and ``evaluate_batches``. ``model.fit`` is not used: its callbacks, metrics and per-epoch dataset
set-up cost more than the small networks of the suite themselves.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

import scratch
from scratch import optimizers as SO
from scratch.checks import check_input, check_l2
from scratch.data import accuracy, as_targets
from scratch.optimizers import BASE_OPTIMIZER, OPTIMIZERS, PRESETS
from scratch.trainer import run_epochs

from .builder import build, dtype_name, to_keras_shape
from .transfer import from_scratch, to_canonical, to_native, to_scratch

#: The Keras optimizer of each base optimizer (:data:`scratch.optimizers.BASE_OPTIMIZER`);
#: the presets are :data:`scratch.optimizers.PRESETS`.
_KERAS_OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "adagrad": keras.optimizers.Adagrad,
    "adam": keras.optimizers.Adam,
}
#: Loss name -> Keras loss *function* (per-sample values; fused with a final softmax/sigmoid
#: on the TensorFlow backend, see the package docstring). Not the class losses: they cast to
#: floatx (float32) first.
_KERAS_LOSSES = {
    "categorical_crossentropy": keras.losses.categorical_crossentropy,
    "binary_crossentropy": keras.losses.binary_crossentropy,
    "mse": keras.losses.mean_squared_error,
}
INITS = ("scratch", "native")


def make_optimizer(name: str, learning_rate: float = 0.01, *, dtype="float32", **hyper) -> keras.optimizers.Optimizer:
    """A native Keras optimizer from a scratch optimizer name.

    ``sgd`` -> ``SGD``, ``momentum`` -> ``SGD(momentum=0.9)``, ``nesterov`` ->
    ``SGD(momentum=0.9, nesterov=True)``, ``rmsprop``, ``adagrad``, ``adam``. ``hyper`` are
    Keras hyperparameters (``momentum``, ``rho``, ``epsilon``, ``centered``,
    ``initial_accumulator_value``, ``beta_1``, ``beta_2``, ``nesterov``; None means Keras's
    default). They are validated by ``scratch.optimizers.make(name, learning_rate,
    flavor="keras", **hyper)`` first, so every framework rejects the same values.

    ``dtype``: Keras keeps the learning rate in a ``keras.config.floatx()`` variable, so a
    float64 model under the default floatx would step with ``float32(lr)`` (``0.01`` becomes
    ``0.009999999776...``), 1e-8 off the torch and scratch trajectories. The optimizer is
    therefore built with floatx set to the model's dtype for the duration of the
    constructor, as a Keras user who writes ``keras.config.set_floatx("float64")`` for a
    float64 model gets; floatx is restored afterwards.
    """
    if name not in BASE_OPTIMIZER:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    if "lr_dtype" in hyper:
        raise ValueError("lr_dtype: Keras keeps the learning rate in a keras.config.floatx() variable; "
                         "here it follows the model's dtype (the dtype argument)")
    SO.make(name, learning_rate, flavor="keras", **hyper)  # validation only
    cls = _KERAS_OPTIMIZERS[BASE_OPTIMIZER[name]]
    kwargs = {**PRESETS.get(name, {}), **{k: v for k, v in hyper.items() if v is not None}}
    previous = keras.config.floatx()
    keras.config.set_floatx(dtype_name(dtype))
    try:
        return cls(learning_rate=float(learning_rate), **kwargs)
    finally:
        keras.config.set_floatx(previous)


def epoch_order(batches) -> tuple:
    """``(order, bounds)`` int64 tensors of one epoch's ``batches`` (index arrays), as a
    compiled epoch takes them: batch ``b`` is ``order[bounds[b]:bounds[b+1]]``."""
    order = tf.constant(np.concatenate(batches).astype(np.int64))
    bounds = tf.constant(np.concatenate([[0], np.cumsum([len(b) for b in batches])]).astype(np.int64))
    return order, bounds


class Trainer:
    """Train a spec network in Keras with the suite's objective.

    Parameters
    ----------
    layers, input_shape
        Spec layers and the canonical one-sample shape ``(C, H, W)`` or ``(F,)``.
    loss : {"categorical_crossentropy", "binary_crossentropy", "mse"}
        Mean over the batch; cross-entropies need the model to end in softmax (sigmoid),
        with which they are fused.
    optimizer : str
        A name of :data:`OPTIMIZERS`, built natively by :func:`make_optimizer`.
    learning_rate : float
    l2 : float
        ``keras.regularizers.l2(l2)`` on every kernel: the objective adds ``l2 * sum(W**2)``.
    dtype : "float32" or "float64"
    seed : int
        Seeds the scratch initial weights (``init="scratch"``) or Keras's initialisers
        (``init="native"``).
    init : {"scratch", "native"}
        ``"scratch"``: load ``scratch.build(layers, input_shape, dtype=dtype, seed=seed)``'s
        weights, so that every framework starts from the same point. ``"native"``: Keras's
        own Glorot-uniform initialiser, seeded with ``seed + i`` for spec entry ``i``.
    jit_compile : bool
        Compile the training functions with XLA. Off by default: on this CPU an XLA epoch
        of course_cnn on digits took about 200 ms against 16 ms without (the results agree
        with scratch to ~1e-14 either way).
    **optimizer_kwargs
        Keras hyperparameters of the optimizer.

    Attributes
    ----------
    model : keras.Sequential
        Built by :func:`keras_models.build`.
    layers, input_shape, dtype, l2, loss, optimizer
        ``optimizer`` is the Keras optimizer instance; ``loss`` the loss name.

    Data arguments are canonical NCHW NumPy arrays of the trainer's dtype and integer labels
    (N,) or targets (N, K), checked as scratch checks them; they are transposed to NHWC once
    per call.
    """

    def __init__(self, layers, input_shape, *, loss="categorical_crossentropy", optimizer="sgd",
                 learning_rate: float = 0.01, l2: float = 0.0, dtype="float64", seed: int = 0,
                 init: str = "scratch", jit_compile: bool = False, **optimizer_kwargs):
        if init not in INITS:
            raise ValueError(f"init: unknown {init!r}; allowed: {', '.join(INITS)}")
        dtype = dtype_name(dtype)
        l2 = check_l2(l2)
        # The scratch twin validates the spec, input shape, seed, and the loss against the last
        # activation with the same messages as the scratch engine, and holds the initial weights.
        ref = scratch.build(layers, input_shape, dtype=dtype, seed=seed)
        ref.compile(loss, SO.SGD(0.01), l2=l2)
        self.layers, self.input_shape, self.dtype, self.l2 = ref.layers, ref.input_shape, dtype, l2
        self.output_shape = ref.output_shape
        self.loss = ref.loss.name
        self.optimizer = make_optimizer(optimizer, learning_rate, dtype=dtype, **optimizer_kwargs)
        self.model = build(self.layers, self.input_shape, dtype=dtype, l2=l2,
                           seed=None if init == "scratch" else ref.seed)
        if init == "scratch":
            from_scratch(self.model, ref.state_dict())
        self.optimizer.build(self.model.trainable_variables)
        self._loss_fn = _KERAS_LOSSES[self.loss]

        tf_dtype = tf.as_dtype(dtype)
        x_spec = tf.TensorSpec((None,) + to_keras_shape(self.input_shape), tf_dtype)
        y_spec = tf.TensorSpec((None,) + tuple(self.output_shape), tf_dtype)
        i_spec = tf.TensorSpec((None,), tf.int64)
        self._tf_dtype = tf_dtype
        # Fixed input signatures: each function is traced once per Trainer, whatever the
        # batch sizes and epochs. TensorFlow counts traces per Python code object, so many
        # Trainers in one process (a grid) would look like retracing of one function and
        # log a false "triggered tf.function retracing" warning; each Trainer's functions
        # really trace once (tested), so that warning is switched off for them.
        self._step_fn = self._compile(self._step, [x_spec, y_spec], jit_compile)
        self._epoch_fn = self._compile(self._epoch, [x_spec, y_spec, i_spec, i_spec], jit_compile)
        self._eval_fn = self._compile(self._eval, [x_spec, y_spec], False)
        self._predict_fn = self._compile(self._predict, [x_spec], False)

    @staticmethod
    def _compile(fn, signature, jit_compile):
        compiled = tf.function(fn, input_signature=signature, jit_compile=jit_compile)
        if hasattr(compiled, "_omit_frequent_tracing_warning"):
            compiled._omit_frequent_tracing_warning = True
        return compiled

    # ------------------------------------------------------------------ graph functions
    def _objective(self, xb, yb):
        """(objective, data loss) of one batch: mean data loss + sum(model.losses) (the L2)."""
        out = self.model(xb, training=True)
        data = tf.reduce_mean(self._loss_fn(yb, out))
        if self.l2:
            return data + tf.add_n(self.model.losses), data
        return data, data

    def _step(self, xb, yb):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            objective, _ = self._objective(xb, yb)
        grads = tape.gradient(objective, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return objective

    def _epoch(self, x, y, order, bounds):
        """All batches of one epoch in one graph: batch ``b`` is ``order[bounds[b]:bounds[b+1]]``."""
        count = tf.shape(bounds, out_type=tf.int64)[0] - 1
        losses = tf.TensorArray(self._tf_dtype, size=tf.cast(count, tf.int32))
        for b in tf.range(count):
            idx = order[bounds[b]:bounds[b + 1]]
            losses = losses.write(tf.cast(b, tf.int32), self._step(tf.gather(x, idx), tf.gather(y, idx)))
        return losses.stack()

    def _eval(self, x, y):
        out = self.model(x, training=False)
        return tf.reduce_sum(self._loss_fn(y, out)), out

    def _predict(self, x):
        return self.model(x, training=False)

    # ------------------------------------------------------------------ data
    def _check_x(self, x, name="x"):
        return check_input(x, self.input_shape, self.dtype, name)

    def _targets(self, y, n, name="y"):
        y = as_targets(y, self.output_shape[0], np.dtype(self.dtype), name=name)
        if y.shape[0] != n:
            raise ValueError(f"{name}: {y.shape[0]} targets for {n} inputs")
        return y

    def _native(self, x, y=None):
        """Tensors in the Keras layout; a tf.Tensor is taken as already converted."""
        if not isinstance(x, tf.Tensor):
            x = tf.constant(to_native(x))
        if y is None:
            return x
        if not isinstance(y, tf.Tensor):
            y = tf.constant(y)
        return x, y

    # ------------------------------------------------------------------ EpochTrainer
    def train_epoch(self, x, y, batches) -> list:
        """One epoch over ``batches`` (index arrays) in one compiled call; the objective of
        each batch before its step (:class:`scratch.trainer.EpochTrainer`). ``x``, ``y``:
        NHWC tensors from ``fit``, or checked canonical NumPy arrays."""
        x, y = self._native(x, y)
        return [float(v) for v in self._epoch_fn(x, y, *epoch_order(batches)).numpy()]

    def evaluate_batches(self, x, y, batch_size) -> dict:
        """``{"loss": mean data loss (no L2), "accuracy"}`` in chunks of ``batch_size`` on
        prepared data, as :meth:`train_epoch` takes them (:class:`scratch.trainer.EpochTrainer`)."""
        x, y = self._native(x, y)
        n = int(x.shape[0])
        step = n if batch_size is None else int(batch_size)
        total, outs = 0.0, []
        for s in range(0, n, step):
            value, out = self._eval_fn(x[s:s + step], y[s:s + step])
            total += float(value)
            outs.append(out.numpy())
        return {"loss": total / n, "accuracy": accuracy(np.concatenate(outs), y.numpy())}

    # ------------------------------------------------------------------ public API
    def train_step(self, x, y) -> float:
        """One optimizer step on a batch; returns the objective (data loss + L2) before the step."""
        x = self._check_x(x)
        y = self._targets(y, x.shape[0])
        return float(self._step_fn(*self._native(x, y)))

    def fit(self, x, y, *, epochs: int = 1, batch_size: int = 32, seed: int = 0, shuffle: bool = True,
            validation_data=None, progress: bool = False, on_epoch_end=None, evaluate_train: bool = True) -> list:
        """Train over the shared seeded batch order; the same history rows as scratch's ``fit``
        (``epoch``, ``loss``, ``train_loss``, ``train_accuracy``, ``test_loss``,
        ``test_accuracy`` with ``validation_data``, ``diverged``; no ``train_*`` with
        ``evaluate_train=False``). The data are checked and moved to NHWC tensors once per
        call; each epoch is one call of the compiled epoch function."""
        x = self._check_x(x)
        xy = self._native(x, self._targets(y, x.shape[0]))
        val = None
        if validation_data is not None:
            vx, vy = validation_data
            vx = self._check_x(vx, "validation x")
            val = self._native(vx, self._targets(vy, vx.shape[0], "validation y"))
        return run_epochs(self, *xy, epochs=epochs, batch_size=batch_size, seed=seed, shuffle=shuffle,
                          validation=val, progress=progress, on_epoch_end=on_epoch_end,
                          evaluate_train=evaluate_train)

    def evaluate(self, x, y, batch_size: int | None = 1000) -> dict:
        """``{"loss": mean data loss (no L2 term), "accuracy": fraction correct}``."""
        x = self._check_x(x)
        return self.evaluate_batches(x, self._targets(y, x.shape[0]), batch_size)

    def predict(self, x, batch_size: int | None = 1000) -> np.ndarray:
        """Model outputs (N, K) (after the final activation), in chunks of ``batch_size``."""
        x = self._native(self._check_x(x))
        n = int(x.shape[0])
        step = n if batch_size is None else int(batch_size)
        return to_canonical(np.concatenate([self._predict_fn(x[s:s + step]).numpy() for s in range(0, n, step)]))

    def state_dict(self) -> dict:
        """The weights in the scratch layout (:func:`keras_models.to_scratch`)."""
        return to_scratch(self.model)

    def load_state_dict(self, state: dict) -> None:
        """Load scratch-layout weights (:func:`keras_models.from_scratch`; checked before copying).
        The optimizer's state (moments, iterations) is kept, as in scratch."""
        from_scratch(self.model, state)

    def __repr__(self):
        return (f"Trainer(keras, {len(self.layers)} layers, input_shape={self.input_shape}, loss={self.loss!r}, "
                f"optimizer={type(self.optimizer).__name__}, l2={self.l2}, dtype={self.dtype!r})")
