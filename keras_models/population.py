"""Population training in Keras: P members of the spec-built network, every member's steps
of one epoch in one compiled TensorFlow function, each member with its own learning rate
and L2 factor.

Every member starts from the same weights and sees the same batches; only ``eta`` and
``lambda`` differ.

* **Members.** Each member is a :class:`keras_models.Trainer` (the spec-built
  ``keras.Sequential`` with ``ExactL2(lambda_p)`` kernels, the scratch initial weights,
  its native Keras optimizer with learning rate ``eta_p``): Keras's own layers,
  regularizers and optimizer rules, so a member computes exactly what its serial cell
  computes.
* **Epoch.** One ``tf.function`` (traced once per population) runs a whole epoch: a
  graph loop over the shared batches, and inside it every member's step (objective under
  a ``GradientTape``, ``apply_gradients``), the members unrolled in the graph. One call
  per epoch replaces one call per member and epoch; evaluation is one call per chunk of
  1000 samples for all members.
  (``stateless_call`` under ``tf.vectorized_map`` was not used: TensorFlow's vectorizer
  has no batched form of a convolution whose filters differ per member and falls back to
  a loop.)
* **Divergence.** A member whose objective is NaN or inf is frozen at once: that step's
  update is skipped (``tf.cond``), and it takes no later step, so its weights stay as they
  were; its objectives are NaN from then on. Members share no tensor, so nothing
  non-finite reaches another. Members dropped by :meth:`Population.keep` are skipped
  inside the same compiled functions (no retracing).

Data: NHWC tensors and (N, K) targets, as :meth:`Population.tensors` makes them from
canonical NumPy arrays.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from scratch.population import correct_counts, member_grid, refuse_dropout

from .trainer import Trainer

__all__ = ["Population"]


class Population:
    """P Keras members trained by one compiled epoch function.

    Parameters
    ----------
    layers, input_shape, loss, optimizer, dtype, seed, init
        As for :class:`keras_models.Trainer`.
    etas, lmbdas : sequences of P floats
        Each member's learning rate (> 0) and L2 factor (>= 0).

    Attributes
    ----------
    size : int
        The members still in the population (:meth:`keep` drops members).
    members : list of :class:`keras_models.Trainer`
        The live members, in order.
    frozen : (size,) bool array
        Live members whose objective became NaN or inf; their weights no longer change.
    """

    def __init__(self, layers, input_shape, etas, lmbdas, *, loss="categorical_crossentropy", optimizer="sgd",
                 dtype="float64", seed: int = 0, init: str = "scratch"):
        self.etas, self.lmbdas = member_grid(etas, lmbdas)
        refuse_dropout(layers, "Keras")
        self._all = [Trainer(layers, input_shape, loss=loss, optimizer=optimizer, learning_rate=float(e),
                             l2=float(l), dtype=dtype, seed=seed, init=init) for e, l in zip(self.etas, self.lmbdas)]
        first = self._all[0]
        self.dtype, self.output_shape = first.dtype, first.output_shape
        self._live = np.arange(len(self._all))
        self._frozen = tf.Variable(tf.zeros(len(self._all), tf.bool), trainable=False)
        self._tf_dtype = tf.as_dtype(self.dtype)
        x_spec = tf.TensorSpec((None,) + tuple(first.model.input_shape[1:]), self._tf_dtype)
        y_spec = tf.TensorSpec((None,) + tuple(self.output_shape), self._tf_dtype)
        i_spec = tf.TensorSpec((None,), tf.int64)
        a_spec = tf.TensorSpec((len(self._all),), tf.bool)
        self._epoch_fn = Trainer._compile(self._epoch, [x_spec, y_spec, i_spec, i_spec, a_spec], False)
        self._eval_fn = Trainer._compile(self._eval, [x_spec, y_spec, a_spec], False)

    @property
    def size(self) -> int:
        return self._live.size

    @property
    def members(self) -> list:
        return [self._all[i] for i in self._live]

    @property
    def frozen(self) -> np.ndarray:
        return self._frozen.numpy()[self._live]

    def _active(self):
        active = np.zeros(len(self._all), dtype=bool)
        active[self._live] = True
        return tf.constant(active)

    # ------------------------------------------------------------------ graph functions
    def _member_step(self, p, xb, yb):
        """Member ``p``'s step as its Trainer takes it, skipped if the objective is not finite."""
        member = self._all[p]
        variables = member.model.trainable_variables
        with tf.GradientTape() as tape:
            objective, _ = member._objective(xb, yb)
        grads = tape.gradient(objective, variables)
        finite = tf.math.is_finite(objective)

        def apply():
            member.optimizer.apply_gradients(zip(grads, variables))
            return tf.constant(True)

        tf.cond(finite, apply, lambda: tf.constant(False))
        self._frozen.scatter_nd_update([[p]], tf.reshape(tf.logical_not(finite), [1]))
        return objective

    def _epoch(self, x, y, order, bounds, active):
        """Every member's steps of one epoch: batch ``b`` is ``order[bounds[b]:bounds[b+1]]``;
        returns the objectives (batches, all members), NaN for skipped members."""
        count = tf.shape(bounds, out_type=tf.int64)[0] - 1
        losses = tf.TensorArray(self._tf_dtype, size=tf.cast(count, tf.int32))
        nan = tf.constant(np.nan, self._tf_dtype)
        for b in tf.range(count):
            idx = order[bounds[b]:bounds[b + 1]]
            xb, yb = tf.gather(x, idx), tf.gather(y, idx)
            row = []
            for p in range(len(self._all)):
                run = tf.logical_and(active[p], tf.logical_not(self._frozen[p]))
                row.append(tf.cond(run, lambda p=p: self._member_step(p, xb, yb), lambda: nan))
            losses = losses.write(tf.cast(b, tf.int32), tf.stack(row))
        return losses.stack()

    def _eval(self, x, y, active):
        """(summed data loss (P,), outputs (P, n, K)) of one chunk; zeros for skipped members."""
        sums, outs = [], []
        zero_out = tf.zeros(tf.concat([tf.shape(x)[:1], tf.constant(self.output_shape)], 0), self._tf_dtype)
        for p, member in enumerate(self._all):
            value, out = tf.cond(active[p], lambda m=member: m._eval(x, y),
                                 lambda: (tf.constant(0, self._tf_dtype), zero_out))
            sums.append(value)
            outs.append(out)
        return tf.stack(sums), tf.stack(outs)

    # ------------------------------------------------------------------ data
    def tensors(self, x, y, name="x"):
        """Checked canonical NumPy ``x`` and labels or targets ``y`` as NHWC tensors."""
        first = self._all[0]
        x = first._check_x(x, name)
        return first._native(x, first._targets(y, x.shape[0], "y" if name == "x" else f"{name[:-1]}y"))

    # ------------------------------------------------------------------ training
    def train_epoch(self, x, y, batches) -> np.ndarray:
        """Objectives (size, batches) of one epoch over ``batches`` (index arrays)."""
        order = tf.constant(np.concatenate(batches).astype(np.int64))
        bounds = tf.constant(np.concatenate([[0], np.cumsum([len(b) for b in batches])]).astype(np.int64))
        losses = self._epoch_fn(x, y, order, bounds, self._active()).numpy()
        return losses.T[self._live].astype(np.float64)

    def evaluate_batches(self, x, y, batch_size: int | None = 1000) -> dict:
        """``{"loss": (size,) mean data loss (no L2), "accuracy": (size,)}`` in chunks of
        ``batch_size``, summed as :meth:`keras_models.Trainer.evaluate_batches` sums them."""
        n = int(x.shape[0])
        step = n if batch_size is None else int(batch_size)
        total, correct = np.zeros(self.size), np.zeros(self.size)
        active = self._active()
        for s in range(0, n, step):
            sums, outs = self._eval_fn(x[s:s + step], y[s:s + step], active)
            total += sums.numpy()[self._live].astype(np.float64)
            correct += correct_counts(outs.numpy()[self._live], y[s:s + step].numpy())
        return {"loss": total / n, "accuracy": correct / n}

    def keep(self, mask) -> None:
        """Keep only the live members where ``mask`` (size,) is true."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.size,):
            raise ValueError(f"mask: expected shape ({self.size},), got {mask.shape}")
        self._live = self._live[mask]
        self.etas, self.lmbdas = self.etas[mask], self.lmbdas[mask]
