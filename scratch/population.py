"""Population training in NumPy: P copies of one network, trained at once, each with its own
learning rate and L2 factor.

Every member starts from the same weights and sees the same batches; only ``eta`` and
``lambda`` differ, so one step of all members is one batched computation:

* every parameter has a leading population axis: a Conv2D kernel is ``W[p, out, in, kh,
  kw]``, a Dense kernel ``W[p, in, out]``, a bias ``b[p, out]``;
* activations are ``(P*N, ...)``: member ``p``'s batch is rows ``p*N`` to ``(p+1)*N - 1``,
  so pooling, activations, flatten and dropout are the scratch layers themselves;
* the first parametric layer's input is shared (the data): its one GEMM takes every
  member's filters at once, ``(N*Ho*Wo, C*kh*kw) @ (C*kh*kw, P*out)``; the layers after it
  use batched matrix products, one per member in a single call;
* where it is exact, a first Conv2D with its relu and a max pool whose windows tile its
  output runs as one cache-blocked stage (:mod:`scratch.population_convpool`), and a
  Dense carries its relu (:mod:`scratch.population_layers`);
* ``eta`` and ``lambda`` are (P,) vectors; L2 is Keras's ``l2(lambda)`` per member
  (``lambda_p * sum(W_p**2)`` over kernels, ``2 * lambda_p * W_p`` in the gradient);
* the optimizer is a scratch optimizer whose learning rate is the (P,) vector
  (:func:`scratch.optimizers.make` broadcasts it along the population axis).

A member whose objective becomes NaN or inf is frozen at once: the step that produced the
non-finite objective and every later one leave its weights as they were, so nothing
non-finite is ever written into them, and members never mix (every product is per member),
so it reaches no other member. :func:`run_population` records the epoch and drops the
member from the population after that epoch.

Each member computes the same operations as a :class:`scratch.Sequential` with that
member's ``eta`` and ``lambda``, in the same order; float64 trajectories agree with the
cell-by-cell ones to rounding (``tests/test_population.py``), and the fast paths give the
general stages' numbers (``tests/test_population_fast.py``).
"""
from __future__ import annotations

import math

import numpy as np

from . import losses as L
from . import optimizers as O
from . import spec as S
from .data import epoch_batches
from .layers import sigmoid
from .population_layers import stages
from .model import Sequential

__all__ = ["Population", "correct_counts", "member_grid", "member_loss", "member_values", "refuse_dropout",
           "run_population", "step_unfrozen"]


# --------------------------------------------------------------------------- losses


def member_loss(loss: L.Loss, a: np.ndarray, y: np.ndarray, need_grad: bool = True):
    """Per-member mean loss and its gradient: ``a`` (P, N, K), ``y`` (N, K) shared.

    Returns ``(values (P,) in a's dtype, grad (P, N, K))`` (grad None without ``need_grad``);
    member ``p``'s entries are what ``loss.value_and_grad(a[p], y)`` computes, in the same
    order of operations.
    """
    values, grad, _ = _member_loss(loss, a, y, need_grad)
    return values, grad


def _member_loss(loss, a, y, need_grad):
    """:func:`member_loss` plus the outputs (P, N, K) ``loss.outputs`` gives, when they come
    at no cost (the softmax of the cross-entropy), else None."""
    p, n, k = a.shape
    outputs = grad = None
    if loss.name == "categorical_crossentropy":
        # log_softmax and softmax (scratch.layers) share z = x - max and exp(z): computed once.
        # The same operations in place where an array has no later use (fewer big temporaries).
        flat = a.reshape(p * n, k)
        z = flat - row_max(flat)
        e = np.exp(z)
        sums = row_sums(e)
        log_softmax = np.subtract(z, np.log(sums), out=z).reshape(p, n, k)
        values = -np.sum(np.multiply(y, log_softmax, out=log_softmax).reshape(p, -1), axis=1) / n
        outputs = np.divide(e, sums, out=e).reshape(p, n, k)
        if need_grad:
            grad = (outputs * y.sum(axis=1, keepdims=True) - y) / a.dtype.type(n)
    elif loss.name == "binary_crossentropy":
        values = np.mean((np.maximum(a, 0) - y * a + np.log1p(np.exp(-np.abs(a)))).reshape(p, -1), axis=1)
        if need_grad:
            grad = (sigmoid(a) - y) / a.dtype.type(n * k)
    elif loss.name == "mse":
        diff = a - y
        values = np.mean((diff * diff).reshape(p, -1), axis=1)
        outputs = a
        if need_grad:
            grad = (2 / a.dtype.type(n * k)) * diff
    else:  # pragma: no cover - the loss table and this one are kept together
        raise ValueError(f"loss: {loss.name!r} has no population form")
    return values, grad, outputs


def row_max(x: np.ndarray) -> np.ndarray:
    """``x.max(axis=1, keepdims=True)`` of a 2-D ``x``, by columns: NumPy reduces short rows
    one row at a time, while K - 1 maxima of whole columns run vectorised. The maximum is
    exact, so the order does not matter (NaN propagates either way)."""
    out = x[:, :1].copy()
    for j in range(1, x.shape[1]):
        np.maximum(out, x[:, j:j + 1], out=out)
    return out


def row_sums(x: np.ndarray) -> np.ndarray:
    """``x.sum(axis=1, keepdims=True)`` of a 2-D ``x``, bit for bit, by columns.

    NumPy sums a contiguous row pairwise: fewer than 8 elements one after the other; up to
    128 in eight running sums ``r_j`` of elements j, j+8, ..., combined as ``((r0+r1)+(r2+r3))
    + ((r4+r5)+(r6+r7))``, then the last K % 8 elements one by one. The same additions on
    whole columns give the same bits (``tests/test_population_fast.py`` checks it) without
    NumPy's per-row cost; longer rows are left to NumPy.
    """
    k = x.shape[1]
    if k > 128 or not x.flags.c_contiguous:
        return x.sum(axis=1, keepdims=True)
    col = [x[:, j:j + 1] for j in range(k)]
    if k < 8:
        out = col[0].copy()
        rest = col[1:]
    else:
        r = [c.copy() for c in col[:8]]
        for i in range(8, k - k % 8, 8):
            for j in range(8):
                r[j] += col[i + j]
        out = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        rest = col[k - k % 8:]
    for c in rest:
        out += c
    return out


# --------------------------------------------------------------------------- the population


class Population:
    """P members of one network, trained as one batched model.

    Parameters
    ----------
    layers, input_shape, dtype, seed
        As for :class:`scratch.Sequential`; the seed gives the initial weights shared by
        every member (or ``state``, a scratch state dict, when given).
    etas, lmbdas : sequences of P floats
        Each member's learning rate (> 0) and L2 factor (>= 0).
    loss, optimizer, flavor, **optimizer_kwargs
        As for :meth:`scratch.Sequential.compile`; the optimizer takes the (P,) learning
        rates (:func:`scratch.optimizers.make`).

    Attributes
    ----------
    size : int
        P, the members still in the population (:meth:`keep` drops members).
    etas, lmbdas : (P,) float64 arrays
    frozen : (P,) bool array
        Members whose objective became NaN or inf; their weights no longer change.
    """

    def __init__(self, layers, input_shape, etas, lmbdas, *, loss="categorical_crossentropy", optimizer="sgd",
                 flavor="keras", dtype=np.float64, seed: int = 0, state: dict | None = None, **optimizer_kwargs):
        self.etas, self.lmbdas = member_grid(etas, lmbdas)
        # The one-member model validates the spec, shapes, dtype, seed and the loss against the
        # last activation with the scratch engine's messages; it holds the initial weights and
        # the layer ops, which the population reuses (the parametric ones are wrapped).
        ref = Sequential(layers, input_shape, dtype=dtype, seed=seed)
        ref.compile(loss, "sgd", learning_rate=1.0)
        if state is not None:
            ref.load_state_dict(state)
        self.layers, self.input_shape, self.output_shape = ref.layers, ref.input_shape, ref.output_shape
        self.dtype, self.loss = ref.dtype, ref.loss
        size = self.etas.size
        self.params = {k: np.repeat(v[None], size, axis=0) for k, v in ref.parameters().items()}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.kernel_keys = ref.kernel_keys
        self._ops = stages(ref.ops[:-1] if self.loss.fused_activation else ref.ops, self)
        self._final = ref.ops[-1] if self.loss.fused_activation else None
        self.optimizer = O.make(optimizer, self.etas, flavor=flavor, **_lr_dtype(flavor, self.dtype, optimizer_kwargs))
        self.frozen = np.zeros(size, dtype=bool)

    @property
    def size(self) -> int:
        return self.etas.size

    def member_state(self, i: int) -> dict:
        """Member ``i``'s weights as a scratch state dict (copies)."""
        return {k: v[i].copy() for k, v in self.params.items()}

    def keep(self, mask) -> None:
        """Keep only the members where ``mask`` (P,) is true: weights, gradients, rates, L2
        factors and optimizer state are all cut down the population axis."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.size,):
            raise ValueError(f"mask: expected shape ({self.size},), got {mask.shape}")
        self.params = {k: v[mask] for k, v in self.params.items()}
        self.grads = {k: v[mask] for k, v in self.grads.items()}
        self.etas, self.lmbdas, self.frozen = self.etas[mask], self.lmbdas[mask], self.frozen[mask]
        self.optimizer.select(mask)

    # ------------------------------------------------------------------ passes
    def _logits(self, x, training):
        """The loss's input (P, N, K): logits when the loss is fused with the last activation."""
        for op, parametric in self._ops:
            x = op.forward(x, training, self.params) if parametric else op.forward(x, training)
        return x

    def forward(self, x) -> np.ndarray:
        """Every member's outputs (P, N) + output_shape for shared inputs x (N,) + input_shape."""
        a = self._logits(x, False)
        return a if self._final is None else self.loss.outputs(a.reshape((-1,) + a.shape[2:])).reshape(a.shape)

    def _backward(self, d):
        for op, parametric in reversed(self._ops):
            d = op.backward(d, True, self.params, self.grads) if parametric else op.backward(d, True)
            if d is None:  # the first parametric layer: nothing below it learns
                break

    def objectives(self, x, y):
        """(objectives (P,) float64, data losses (P,) of the dtype) of one batch; fills the
        gradients, L2 included. ``x`` (N,) + input_shape and ``y`` (N, K) are checked arrays."""
        a = self._logits(x, True)
        data, da = member_loss(self.loss, a, y)
        self._backward(da)
        penalty = np.zeros(self.size)
        if np.any(self.lmbdas):
            two_l2 = (2 * self.lmbdas).astype(self.dtype)
            for k in self.kernel_keys:
                w = self.params[k]
                self.grads[k] += _along(two_l2, w) * w
                penalty += np.sum((w * w).reshape(self.size, -1), axis=1)
            penalty *= self.lmbdas
        return data.astype(np.float64) + penalty, data

    def train_step(self, x, y) -> np.ndarray:
        """One optimizer step of every member that is not frozen; returns the objectives (P,)
        before the step. A member whose objective is NaN or inf is frozen now, this step
        included."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            objective, _ = self.objectives(x, y)
            self.frozen |= ~np.isfinite(objective)
            step_unfrozen(self.optimizer, self.params, self.grads, self.frozen)
        return objective

    def train_epoch(self, x, y, batches) -> np.ndarray:
        """Objectives (P, batches) of one epoch over ``batches`` (index arrays)."""
        out = np.empty((self.size, len(batches)))
        for b, idx in enumerate(batches):
            out[:, b] = self.train_step(x[idx], y[idx])
        return out

    def evaluate_batches(self, x, y, batch_size: int | None = 1000) -> dict:
        """``{"loss": (P,) mean data loss (no L2), "accuracy": (P,)}``, in chunks of ``batch_size``
        samples as :meth:`scratch.Sequential.evaluate` takes them."""
        n = x.shape[0]
        step = n if batch_size is None else batch_size
        total = np.zeros(self.size)
        correct = np.zeros(self.size)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            for i in range(0, n, step):
                a = self._logits(x[i:i + step], False)
                value, _, outputs = _member_loss(self.loss, a, y[i:i + step], need_grad=False)
                total += value.astype(np.float64) * a.shape[1]
                if outputs is None:
                    outputs = a if self._final is None else self.loss.outputs(a.reshape((-1,) + a.shape[2:]))
                correct += correct_counts(outputs.reshape(a.shape), y[i:i + step])
        return {"loss": total / n, "accuracy": correct / n}


def step_unfrozen(optimizer, params: dict, grads: dict, frozen: np.ndarray) -> None:
    """``optimizer.step(params, grads)`` for the members where ``frozen`` (P,) is false:
    the frozen members' weights are put back as they were, so a NaN gradient or optimizer
    state never reaches them (their own state may change; they are dropped after the epoch)."""
    saved = {k: v[frozen] for k, v in params.items()} if frozen.any() else None
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        optimizer.step(params, grads)
    if saved is not None:
        for k, v in saved.items():
            params[k][frozen] = v


def correct_counts(outputs, y) -> np.ndarray:
    """Correct predictions per member, as :func:`scratch.data.accuracy` counts them:
    outputs (P, N, K) (after the final activation), targets (N, K)."""
    if outputs.shape[2] == 1:
        return np.sum((outputs[..., 0] >= 0.5) == (y[:, 0] >= 0.5), axis=1)
    return np.sum(np.argmax(outputs, axis=2) == np.argmax(y, axis=1), axis=1)


def _along(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(P,) ``v`` shaped to broadcast along the leading axis of ``w``."""
    return v.reshape((-1,) + (1,) * (w.ndim - 1))


def member_grid(etas, lmbdas) -> tuple:
    """(etas, lmbdas) of a population as two (P,) float64 arrays, one pair per member:
    etas finite and > 0, lmbdas finite and >= 0, as many of each."""
    etas = member_values("etas", etas, strict=True)
    lmbdas = member_values("lmbdas", lmbdas, strict=False)
    if etas.shape != lmbdas.shape:
        raise ValueError(f"lmbdas: {lmbdas.size} values for {etas.size} etas; give one per member")
    return etas, lmbdas


def refuse_dropout(layers, framework: str) -> None:
    """A ValueError when ``layers`` hold a Dropout: ``framework``'s serial trainer draws its
    masks from a stream a population cannot reproduce member by member."""
    if any(isinstance(layer, S.Dropout) and layer.rate > 0 for layer in S.validate(layers)):
        raise ValueError(f"layers: a {framework} population cannot reproduce the serial trainer's dropout masks; "
                         "train networks with Dropout cell by cell")


def member_values(name, values, *, strict) -> np.ndarray:
    """``values`` as a (P,) float64 array, one per member, finite and > 0 (``strict``) or
    >= 0; otherwise a ValueError naming ``name``."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name}: expected a non-empty list of numbers, one per member, got shape {v.shape}")
    if not np.all(np.isfinite(v)) or np.any(v <= 0 if strict else v < 0):
        raise ValueError(f"{name}: every value must be a finite number {'> 0' if strict else '>= 0'}, got {v.tolist()}")
    return v


def _lr_dtype(flavor, dtype, kwargs) -> dict:
    # As Sequential.compile: the Keras flavour keeps its learning rate in the model's dtype.
    if flavor == "keras":
        kwargs = {"lr_dtype": dtype.name, **kwargs}
    return kwargs


# --------------------------------------------------------------------------- the epoch loop


def run_population(population, x, y, *, epochs, batch_size, seed, shuffle=True, validation=None,
                   evaluate_train=True, on_epoch_end=None) -> list:
    """Train every member for ``epochs`` over the shared seeded batch order; the epoch loop
    of :func:`scratch.model.run_epochs`, one history per member.

    ``population`` provides ``size``, ``frozen`` (P,), ``train_epoch(x, y, batches) ->
    (P, batches)`` objectives, ``evaluate_batches(x, y, 1000) -> {"loss", "accuracy"}`` of
    (P,) arrays and ``keep(mask)``; this loop works for the NumPy, torch and Keras
    populations alike. Data are in the population's own layout, already checked.

    Returns one list of rows per member (in the order it was built), each row as
    :func:`scratch.model.run_epochs` gives it: ``epoch``, ``loss``, ``train_loss``,
    ``train_accuracy``, ``test_loss``, ``test_accuracy``, ``diverged``. A member that
    diverges in an epoch gets that epoch's row with its non-finite loss, NaN metrics (its
    frozen weights are not evaluated) and ``diverged=True``, and leaves the population.
    ``on_epoch_end(member, row)`` is called for every row.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs <= 0:
        raise ValueError(f"epochs: expected a positive int, got {epochs!r}")
    n = x.shape[0] if hasattr(x, "shape") else len(x)
    epoch_batches(n, batch_size, seed, 0, shuffle)  # validates batch_size before any work
    members = np.arange(population.size)       # original index of each live member
    histories = [[] for _ in members]
    for epoch in range(epochs):
        if members.size == 0:
            break
        batches = epoch_batches(n, batch_size, seed, epoch, shuffle)
        losses = population.train_epoch(x, y, batches)
        means = np.mean(losses, axis=1)
        diverged = ~np.isfinite(means) | np.asarray(population.frozen)
        metrics = {}
        if evaluate_train:
            metrics.update({f"train_{k}": v for k, v in population.evaluate_batches(x, y, 1000).items()})
        if validation is not None:
            metrics.update({f"test_{k}": v for k, v in population.evaluate_batches(*validation, 1000).items()})
        for j, member in enumerate(members):
            row = {"epoch": epoch + 1, "loss": float(means[j])}
            for k, v in metrics.items():
                row[k] = math.nan if diverged[j] else float(v[j])
            row["diverged"] = bool(diverged[j])
            histories[member].append(row)
            if on_epoch_end is not None:
                on_epoch_end(int(member), row)
        if diverged.any():
            population.keep(~diverged)
            members = members[~diverged]
    return histories
