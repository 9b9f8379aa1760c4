"""Population training in Keras: P members of the spec-built network trained at once by
compiled functions of Keras's own layers, each member with its own learning rate and L2 factor.

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
  The one exception is plain SGD, the grid's default, whose rule ``w - g * lr`` (with the
  rates :meth:`~scratch.optimizers.Optimizer.applied_learning_rate` gives) the compiled
  epoch applies itself: one call per epoch instead of one per batch and a round trip of
  the weights through NumPy (measured 30% off a training epoch of 49 ``course_cnn``
  members); its numbers are the NumPy rule's to the last bit (tested).
* **Divergence.** A member whose objective is NaN or inf is frozen at once: the step that
  produced it and every later one leave its weights as they were, and nothing it computes
  reaches another member. :func:`scratch.population.run_population` records the epoch
  and drops it (:meth:`Population.keep`): it stays in its slot of the wide network,
  frozen and hidden, until a quarter of the slots are such; then the network is rebuilt
  for the members left (a new trace of every compiled function).

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
from .trainer import Trainer, epoch_order

__all__ = ["COLUMNS_BUDGET", "EVAL_CHUNK", "EVAL_CHUNKS_PER_CALL", "Population", "REBUILD_SHARE"]

#: The largest evaluation chunk, in samples (see :meth:`Population.evaluate_batches`).
EVAL_CHUNK = 250
#: The most evaluation chunks one compiled call runs (unrolled in its graph).
EVAL_CHUNKS_PER_CALL = 16
#: The most bytes :meth:`Population.tensors` spends on a data set's window columns; larger
#: data sets stay NHWC and each batch's columns are taken inside the step.
COLUMNS_BUDGET = 2 ** 28
#: The wide network is rebuilt for the members left (a new trace of every compiled
#: function, about 2 s for ``course_cnn``) only once this share of its slots is held by
#: members that left; until then they stay in it, frozen, and are not shown.
REBUILD_SHARE = 0.25


def _along(v, w):
    """(P,) ``v`` shaped to broadcast along the leading axis of ``w``."""
    return tf.reshape(v, [-1] + [1] * (w.shape.rank - 1))


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
        Every member's weights, ``(P,) + Keras shape``, keyed by scratch key (copies).
    etas, lmbdas : (P,) float64 arrays
    frozen : (P,) bool array
        Members whose objective became NaN or inf; their weights no longer change.

    The wide network has one slot per member it was built for. A member that leaves
    (:meth:`keep`) keeps its slot, frozen and hidden from every result, until
    :data:`REBUILD_SHARE` of the slots are such: members never mix, so it changes no other
    member's numbers, and it saves a rebuild (a new trace) per divergence.
    """

    def __init__(self, layers, input_shape, etas, lmbdas, *, loss="categorical_crossentropy", optimizer="sgd",
                 dtype="float64", seed: int = 0, init: str = "scratch"):
        self._etas, self._lmbdas = member_grid(etas, lmbdas)
        refuse_dropout(layers, "Keras")
        ref = Trainer(layers, input_shape, loss=loss, optimizer=optimizer, learning_rate=float(self._etas[0]),
                      l2=0.0, dtype=dtype, seed=seed, init=init)
        self.reference = ref
        self.dtype, self.output_shape = ref.dtype, ref.output_shape
        self._plan = weight_plan(ref.model)
        self._keys = member_keys(ref.model)
        values = [v.numpy() for v in ref.model.trainable_variables]
        slots = self._etas.size
        self._slot_params = {k: np.repeat(v[None], slots, axis=0) for k, v in zip(self._keys, values)}
        self._in = np.ones(slots, dtype=bool)      # slots of members still in the population
        self._frozen = np.zeros(slots, dtype=bool)
        self.optimizer = O.make(optimizer, self._etas, flavor="keras", lr_dtype=self.dtype)
        # Keras's plain SGD (w - g * lr) is applied inside the compiled epoch (one call per
        # epoch instead of one per batch, no round trip of the weights through NumPy);
        # every other rule steps in NumPy after each compiled batch.
        self.fused_sgd = isinstance(self.optimizer, O.SGD) and self.optimizer.momentum == 0.0
        self._build()

    @property
    def size(self) -> int:
        return int(self._in.sum())

    @property
    def params(self) -> dict:
        return {k: v[self._in] for k, v in self._slot_params.items()}

    @property
    def etas(self) -> np.ndarray:
        return self._etas[self._in]

    @property
    def lmbdas(self) -> np.ndarray:
        return self._lmbdas[self._in]

    @property
    def frozen(self) -> np.ndarray:
        return self._frozen[self._in]

    # ------------------------------------------------------------------ the compiled functions
    def _build(self):
        """The wide network for the current members; its compiled functions come with the
        first data of each form (:meth:`_functions`)."""
        ref = self.reference
        self._net = WideNetwork(ref.model, ref.layers, ref.input_shape, self._in.size, self.dtype)
        self._kernel_index = [i for i, k in enumerate(self._keys) if k.endswith(".kernel")]
        self._compiled = {}

    def _functions(self, x):
        """(step, epoch) compiled for data shaped as ``x`` (NHWC or window columns); epoch
        is None unless :attr:`fused_sgd`."""
        form = tuple(x.shape[1:])
        if form not in self._compiled:
            tf_dtype = tf.as_dtype(self.dtype)
            w_specs = [tf.TensorSpec(v.shape, tf_dtype) for v in self._slot_params.values()]
            x_spec = tf.TensorSpec((None,) + form, tf_dtype)
            y_spec = tf.TensorSpec((None,) + tuple(self.output_shape), tf_dtype)
            p_spec = tf.TensorSpec((self._in.size,), tf_dtype)
            i_spec = tf.TensorSpec((None,), tf.int64)
            step = Trainer._compile(self._step, [w_specs, p_spec, x_spec, y_spec, i_spec], False)
            epoch = None
            if self.fused_sgd:
                f_spec = tf.TensorSpec((self._in.size,), tf.bool)
                epoch = Trainer._compile(self._sgd_epoch, [w_specs, p_spec, p_spec, f_spec, x_spec, y_spec,
                                                           i_spec, i_spec], False)
            self._compiled[form] = (step, epoch)
        return self._compiled[form]

    def _evaluator(self, x, chunk: int):
        """The evaluation of all of ``x`` (whose length is part of the compiled shape) in
        chunks of ``chunk`` samples, compiled."""
        key = ("evaluate", tuple(x.shape), chunk)
        if key not in self._compiled:
            tf_dtype = tf.as_dtype(self.dtype)
            specs = [[tf.TensorSpec(v.shape, tf_dtype) for v in self._slot_params.values()],
                     tf.TensorSpec(tuple(x.shape), tf_dtype),
                     tf.TensorSpec((x.shape[0],) + tuple(self.output_shape), tf_dtype)]
            self._compiled[key] = Trainer._compile(lambda w, xs, ys: self._eval(w, xs, ys, chunk), specs, False)
        return self._compiled[key]

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

    def _sgd_epoch(self, weights, lmbdas, rates, frozen, x, y, order, bounds):
        """All batches of one epoch (batch ``b`` is ``order[bounds[b]:bounds[b+1]]``) with
        Keras's plain SGD rule, ``w - g * lr``, applied here to the members not frozen: a
        member whose objective is NaN or inf is frozen from that batch on, as in
        :meth:`train_step`. Returns (objectives (batches, P), weights, frozen)."""
        count = tf.shape(bounds, out_type=tf.int64)[0] - 1
        objectives = tf.TensorArray(x.dtype, size=tf.cast(count, tf.int32))
        for b in tf.range(count):
            objective, grads = self._step(weights, lmbdas, x, y, order[bounds[b]:bounds[b + 1]])
            frozen = frozen | ~tf.math.is_finite(objective)
            weights = [tf.where(_along(frozen, w), w, w - g * _along(rates, w)) for w, g in zip(weights, grads)]
            objectives = objectives.write(tf.cast(b, tf.int32), objective)
        return objectives.stack(), weights, frozen

    def _eval(self, weights, x, y, chunk):
        """(per-chunk sums of the data loss (chunks, P), outputs (P, N, K)) of data whose
        length N is static, chunk by chunk."""
        sums, outs = [], []
        for s in range(0, x.shape[0], chunk):
            out = self._net(weights, x[s:s + chunk], False)
            sums.append(tf.reduce_sum(self._data_losses(y[s:s + chunk], out), axis=1))
            outs.append(out)
        return tf.stack(sums), tf.concat(outs, axis=1)

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
        return list(self._slot_params.values())

    def train_step(self, x, y, idx) -> np.ndarray:
        """One optimizer step of every member that is not frozen on batch ``idx`` of the
        tensors ``x``, ``y``; the objectives (P,) before the step. A member whose objective
        is NaN or inf is frozen now, this step included."""
        step = self._functions(x)[0]
        objective, grads = step(self._weights(), self._lmbdas.astype(self.dtype), x, y, tf.constant(idx, tf.int64))
        objective = objective.numpy().astype(np.float64)
        self._frozen |= ~np.isfinite(objective)
        step_unfrozen(self.optimizer, self._slot_params, {k: g.numpy() for k, g in zip(self._keys, grads)},
                      self._frozen)
        return objective[self._in]

    def train_epoch(self, x, y, batches) -> np.ndarray:
        """Objectives (P, batches) of one epoch over ``batches`` (index arrays): in one
        compiled call with :attr:`fused_sgd`, else :meth:`train_step` by batch."""
        epoch = self._functions(x)[1]
        if epoch is None:
            out = np.empty((self.size, len(batches)))
            for b, idx in enumerate(batches):
                out[:, b] = self.train_step(x, y, idx)
            return out
        rates = self.optimizer.applied_learning_rate(self.dtype, 1)
        objectives, weights, frozen = epoch(self._weights(), self._lmbdas.astype(self.dtype), rates, self._frozen,
                                            x, y, *epoch_order(batches))
        self._slot_params = {k: w.numpy() for k, w in zip(self._keys, weights)}
        self._frozen = frozen.numpy()
        return objectives.numpy().astype(np.float64).T[self._in]

    def evaluate_batches(self, x, y, batch_size: int | None = 1000) -> dict:
        """``{"loss": (P,) mean data loss (no L2), "accuracy": (P,)}``.

        Evaluated in chunks of at most :data:`EVAL_CHUNK` samples (``batch_size`` when
        smaller): a chunk's wide activations then stay in the caches (measured 25% faster
        than chunks of 1000 for 49 members of ``course_cnn``), up to
        :data:`EVAL_CHUNKS_PER_CALL` of them in one compiled call. The chunk sums are added
        in float64, so the loss equals the Trainer's (chunks of ``batch_size``) to rounding."""
        n = int(x.shape[0])
        chunk = min(EVAL_CHUNK, n if batch_size is None else int(batch_size))
        per_call = chunk * EVAL_CHUNKS_PER_CALL
        total, correct = np.zeros(self._in.size), np.zeros(self._in.size)
        weights = self._weights()
        for s in range(0, n, per_call):
            xs, ys = (x, y) if n <= per_call else (x[s:s + per_call], y[s:s + per_call])
            sums, out = self._evaluator(xs, chunk)(weights, xs, ys)
            for row in sums.numpy().astype(np.float64):
                total += row
            correct += correct_counts(out.numpy(), ys.numpy())
        return {"loss": total[self._in] / n, "accuracy": correct[self._in] / n}

    def keep(self, mask) -> None:
        """Keep only the members where ``mask`` (P,) is true (weights, rates, L2 factors,
        optimizer state). The others are frozen in their slots, hidden; the wide network
        is rebuilt without them once :data:`REBUILD_SHARE` of its slots are such."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.size,):
            raise ValueError(f"mask: expected shape ({self.size},), got {mask.shape}")
        if mask.all():
            return
        left = np.flatnonzero(self._in)[~mask]
        self._in[left] = False
        self._frozen[left] = True  # its weights no longer change
        if not self._in.any() or (~self._in).sum() < REBUILD_SHARE * self._in.size:
            return
        kept = self._in
        self._slot_params = {k: v[kept] for k, v in self._slot_params.items()}
        self._etas, self._lmbdas, self._frozen = self._etas[kept], self._lmbdas[kept], self._frozen[kept]
        self.optimizer.select(kept)
        self._in = np.ones(int(kept.sum()), dtype=bool)
        self._build()

    def member_state(self, i: int) -> dict:
        """Member ``i``'s weights in the scratch layout (copies), as :func:`keras_models.to_scratch`
        gives a model's."""
        slot = np.flatnonzero(self._in)[i]
        return {f"{item['index']}.{key}": to_scratch_array(item, key, self._slot_params[f"{item['index']}.{key}"][slot])
                for item in self._plan for key in ("kernel", "bias")}
