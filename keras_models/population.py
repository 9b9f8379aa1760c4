"""Population training in Keras: P members of the spec-built network trained at once by one
compiled step of Keras's own layers, each member with its own learning rate and L2 factor.

Every member starts from the same weights (those of :class:`keras_models.Trainer` with the
same seed and ``init``) and sees the same batches; only ``eta`` and ``lambda`` differ.

* **Network.** :class:`keras_models.population_layers.WideNetwork`: the member model's
  layers, widened to carry every member (the first Conv2D takes every member's filters
  on the shared data, later ones are grouped convolutions, Dense layers are
  ``EinsumDense`` with a member axis). It is run with ``stateless_call`` on the members'
  weights, so the step is one compiled TensorFlow function for all members.
* **Objective.** Member ``p``'s is its Trainer's: the mean Keras loss (fused with the final
  softmax or sigmoid, as Keras fuses it) plus ``lambda_p * sum(W**2)`` per kernel, as
  ``ExactL2(lambda_p)`` adds it (nothing is added when ``lambda_p`` is 0). The gradient of
  the members' sum is each member's own gradient: members share no product.
* **Update.** :func:`scratch.optimizers.make` with ``flavor="keras"`` and the (P,) learning
  rates, kept in the model's dtype as Keras keeps its learning rate: the rules of Keras's
  SGD (momentum, Nesterov), RMSprop, Adagrad and Adam, operation for operation, tested
  against Keras's optimizers (``tests/test_optimizers.py``), applied to the (P, ...) member
  weights in NumPy. One copy of the rules serves the scratch, torch and Keras populations.
* **Divergence.** A member whose objective is NaN or inf is frozen at once: the step that
  produced it and every later one leave its weights as they were, and nothing it computes
  reaches another member. :func:`scratch.population.run_population` records the epoch
  and drops it (:meth:`Population.keep`, which rebuilds the wide network for the members
  left: one trace per size).

Weights: ``params`` maps the scratch keys (``"<spec index>.kernel"``, ``".bias"``) to
``(P,) + Keras shape`` arrays; :meth:`Population.member_state` gives one member's weights
in the scratch layout (as :func:`keras_models.to_scratch` gives a model's).

Data: NHWC tensors, or the first layer's window columns (taken once per data set where
they fit :data:`COLUMNS_BUDGET`), and (N, K) targets, as :meth:`Population.tensors` makes
them from canonical NumPy arrays.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from scratch import optimizers as O
from scratch.population import correct_counts, member_grid, refuse_dropout, step_unfrozen

from .layout import to_scratch_array, weight_plan
from .population_layers import WideNetwork, member_keys
from .trainer import Trainer

__all__ = ["COLUMNS_BUDGET", "EVAL_CHUNK", "Population"]

#: The largest evaluation chunk, in samples (see :meth:`Population.evaluate_batches`).
EVAL_CHUNK = 250
#: The most bytes :meth:`Population.tensors` spends on a data set's window columns; larger
#: data sets stay NHWC and each batch's columns are taken inside the step.
COLUMNS_BUDGET = 2 ** 28


class Population:
    """P Keras members trained as one wide model.

    Parameters
    ----------
    layers, input_shape, loss, optimizer, dtype, seed, init
        As for :class:`keras_models.Trainer` (which validates them and gives the initial
        weights).
    etas, lmbdas : sequences of P floats
        Each member's learning rate (> 0) and L2 factor (>= 0).

    Attributes
    ----------
    size : int
        P, the members still in the population (:meth:`keep` drops members).
    params : dict[str, np.ndarray]
        Every member's weights, ``(P,) + Keras shape``, keyed by scratch key.
    etas, lmbdas : (P,) float64 arrays
    frozen : (P,) bool array
        Members whose objective became NaN or inf; their weights no longer change.
    """

    def __init__(self, layers, input_shape, etas, lmbdas, *, loss="categorical_crossentropy", optimizer="sgd",
                 dtype="float64", seed: int = 0, init: str = "scratch"):
        self.etas, self.lmbdas = member_grid(etas, lmbdas)
        refuse_dropout(layers, "Keras")
        ref = Trainer(layers, input_shape, loss=loss, optimizer=optimizer, learning_rate=float(self.etas[0]),
                      l2=0.0, dtype=dtype, seed=seed, init=init)
        self.reference = ref
        self.dtype, self.output_shape = ref.dtype, ref.output_shape
        self._plan = weight_plan(ref.model)
        self._keys = member_keys(ref.model)
        values = [v.numpy() for v in ref.model.trainable_variables]
        self.params = {k: np.repeat(v[None], self.size, axis=0) for k, v in zip(self._keys, values)}
        self.optimizer = O.make(optimizer, self.etas, flavor="keras", lr_dtype=self.dtype)
        self.frozen = np.zeros(self.size, dtype=bool)
        self._build()

    @property
    def size(self) -> int:
        return self.etas.size

    # ------------------------------------------------------------------ the compiled functions
    def _build(self):
        """The wide network for the current members; its compiled functions come with the
        first data of each form (:meth:`_functions`)."""
        ref = self.reference
        self._net = WideNetwork(ref.model, ref.layers, ref.input_shape, self.size, self.dtype)
        self._kernel_index = [i for i, k in enumerate(self._keys) if k.endswith(".kernel")]
        self._compiled = {}

    def _functions(self, x):
        """(step, evaluation) compiled for data shaped as ``x`` (NHWC or window columns)."""
        form = tuple(x.shape[1:])
        if form not in self._compiled:
            tf_dtype = tf.as_dtype(self.dtype)
            w_specs = [tf.TensorSpec(v.shape, tf_dtype) for v in self.params.values()]
            x_spec = tf.TensorSpec((None,) + form, tf_dtype)
            y_spec = tf.TensorSpec((None,) + tuple(self.output_shape), tf_dtype)
            l_spec = tf.TensorSpec((self.size,), tf_dtype)
            i_spec = tf.TensorSpec((None,), tf.int64)
            self._compiled[form] = (Trainer._compile(self._step, [w_specs, l_spec, x_spec, y_spec, i_spec], False),
                                    Trainer._compile(self._eval, [w_specs, x_spec, y_spec], False))
        return self._compiled[form]

    def _data_losses(self, y, out):
        """Per-member, per-sample Keras loss values (P, N) of outputs (P, N, K), targets (N, K)."""
        return self.reference._loss_fn(tf.broadcast_to(y[None], tf.shape(out)), out)

    def _step(self, weights, lmbdas, x, y, idx):
        """(objectives (P,), gradients in member layout) of the batch ``x[idx], y[idx]``."""
        xb, yb = tf.gather(x, idx), tf.gather(y, idx)
        with tf.GradientTape() as tape:
            tape.watch(weights)
            data = tf.reduce_mean(self._data_losses(yb, self._net(weights, xb, True)), axis=1)
            penalties = [lmbdas * tf.reduce_sum(tf.square(weights[i]), axis=list(range(1, weights[i].shape.rank)))
                         for i in self._kernel_index]
            # ExactL2 adds nothing for lambda = 0 (not 0 * sum, which is NaN once sum is inf)
            objective = tf.where(lmbdas > 0, data + tf.add_n(penalties), data)
            total = tf.reduce_sum(objective)
        return objective, tape.gradient(total, weights)

    def _eval(self, weights, x, y):
        out = self._net(weights, x, False)
        return tf.reduce_sum(self._data_losses(y, out), axis=1), out

    # ------------------------------------------------------------------ data
    def tensors(self, x, y, name="x"):
        """Checked canonical NumPy ``x`` and labels or targets ``y`` as the tensors the
        population trains on: ``x`` as the first layer's window columns when the network
        starts with a :class:`~keras_models.population_layers.PooledConv` and they take at
        most :data:`COLUMNS_BUDGET` bytes (computed once here, not once per batch), else
        NHWC; ``y`` (N, K)."""
        ref = self.reference
        x = ref._check_x(x, name)
        x, y = ref._native(x, ref._targets(y, x.shape[0], "y" if name == "x" else f"{name[:-1]}y"))
        columns = self._net.columns
        if columns is not None and x.shape[0]:
            per_sample = math.prod(columns(x[:1]).shape[1:]) * x.dtype.size
            if x.shape[0] * per_sample <= COLUMNS_BUDGET:
                x = columns(x)
        return x, y

    # ------------------------------------------------------------------ training
    def _weights(self):
        return list(self.params.values())

    def train_step(self, x, y, idx) -> np.ndarray:
        """One optimizer step of every member that is not frozen on batch ``idx`` of the
        tensors ``x``, ``y``; the objectives (P,) before the step. A member whose objective
        is NaN or inf is frozen now, this step included."""
        lmbdas = self.lmbdas.astype(self.dtype)
        step, _ = self._functions(x)
        objective, grads = step(self._weights(), lmbdas, x, y, tf.constant(idx, tf.int64))
        objective = objective.numpy().astype(np.float64)
        self.frozen |= ~np.isfinite(objective)
        step_unfrozen(self.optimizer, self.params, {k: g.numpy() for k, g in zip(self._keys, grads)}, self.frozen)
        return objective

    def train_epoch(self, x, y, batches) -> np.ndarray:
        """Objectives (P, batches) of one epoch over ``batches`` (index arrays)."""
        out = np.empty((self.size, len(batches)))
        for b, idx in enumerate(batches):
            out[:, b] = self.train_step(x, y, idx)
        return out

    def evaluate_batches(self, x, y, batch_size: int | None = 1000) -> dict:
        """``{"loss": (P,) mean data loss (no L2), "accuracy": (P,)}``.

        Evaluated in chunks of at most :data:`EVAL_CHUNK` samples (``batch_size`` when
        smaller): a chunk's wide activations then stay in the caches (measured 25% faster
        than chunks of 1000 for 49 members of ``course_cnn``). The chunk sums are added in
        float64, so the loss equals the Trainer's (chunks of ``batch_size``) to rounding."""
        n = int(x.shape[0])
        step = min(EVAL_CHUNK, n if batch_size is None else int(batch_size))
        total, correct = np.zeros(self.size), np.zeros(self.size)
        weights, (_, evaluate) = self._weights(), self._functions(x)
        for s in range(0, n, step):
            sums, out = evaluate(weights, x[s:s + step], y[s:s + step])
            total += sums.numpy().astype(np.float64)
            correct += correct_counts(out.numpy(), y[s:s + step].numpy())
        return {"loss": total / n, "accuracy": correct / n}

    def keep(self, mask) -> None:
        """Keep only the members where ``mask`` (P,) is true (weights, rates, L2 factors,
        optimizer state); the wide network is rebuilt for them."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.size,):
            raise ValueError(f"mask: expected shape ({self.size},), got {mask.shape}")
        if mask.all():
            return
        self.params = {k: v[mask] for k, v in self.params.items()}
        self.etas, self.lmbdas, self.frozen = self.etas[mask], self.lmbdas[mask], self.frozen[mask]
        self.optimizer.select(mask)
        if self.size:
            self._build()

    def member_state(self, i: int) -> dict:
        """Member ``i``'s weights in the scratch layout (copies), as :func:`keras_models.to_scratch`
        gives a model's."""
        return {f"{item['index']}.{key}": to_scratch_array(item, key, self.params[f"{item['index']}.{key}"][i])
                for item in self._plan for key in ("kernel", "bias")}
