"""Population training in PyTorch: P copies of the spec-built model, trained at once with
``torch.func``, each with its own learning rate and L2 factor.

Every member starts from the same weights (those of :class:`torch_models.Trainer` with
the same seed and ``init``) and sees the same batches; only ``eta`` and ``lambda`` differ.

* **Weights.** The model of :class:`torch_models.Trainer` (``torch_models.build`` plus
  :func:`torch_models.from_scratch`), its parameters stacked along a leading population
  axis (``torch.func.stack_module_state``): a Conv2d weight is ``(P, out, in, kh, kw)``,
  a Linear weight ``(P, out, in)``, a bias ``(P, out)``.
* **Step.** ``vmap(grad(objective))`` over the members with
  ``torch.func.functional_call`` of that model: the data are shared (``in_dims=None``), so
  the first layer runs as one convolution (or matrix product) with every member's
  filters; later layers run batched. The objective is the trainer's: the mean data loss
  (fused with the last activation) ``+ lambda_p * sum(W_p**2)`` over kernels, in the
  same order of operations.
* **Update.** :func:`scratch.optimizers.make` with ``flavor="torch"`` and the (P,)
  learning rates: the single-tensor rules of ``torch.optim`` (SGD with momentum and
  Nesterov, RMSprop, Adagrad, Adam) operation for operation, applied in place to NumPy
  views of the stacked weights (``Tensor.numpy`` shares memory), member rates broadcast
  along the population axis. The rules are tested against ``torch.optim`` itself
  (``tests/test_optimizers.py``), so one copy of them serves scratch and torch.
* **Divergence.** A member whose objective is NaN or inf is frozen at once: the step
  that produced it and every later one leave its weights as they were. Members never
  mix (every product is per member), so nothing non-finite reaches another one.
  :func:`scratch.population.run_population` drives the epochs, records the epoch of
  divergence and drops the member (:meth:`Population.keep`).

Dropout is not supported (the serial trainer draws its masks from torch's global RNG
in an order a vmapped step cannot reproduce); such networks train cell by cell.

Data: canonical NCHW tensors of the population's dtype and (N, K) targets, as
:meth:`Population.tensors` makes them from NumPy.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call, grad, stack_module_state, vmap

from scratch import optimizers as O
from scratch.population import correct_counts, member_grid, refuse_dropout

from .trainer import Trainer

__all__ = ["Population"]


class Population:
    """P members of one torch network, trained as one vmapped model.

    Parameters
    ----------
    layers, input_shape, loss, optimizer, dtype, seed, init
        As for :class:`torch_models.Trainer` (which validates them and gives the model).
    etas, lmbdas : sequences of P floats
        Each member's learning rate (> 0) and L2 factor (>= 0).

    Attributes
    ----------
    size : int
        P, the members still in the population.
    params : dict[str, torch.Tensor]
        The stacked weights, ``(P,) + shape`` each, keyed by the model's parameter names.
    frozen : (P,) bool array
        Members whose objective became NaN or inf; their weights no longer change.
    """

    def __init__(self, layers, input_shape, etas, lmbdas, *, loss="categorical_crossentropy", optimizer="sgd",
                 dtype="float64", seed: int = 0, init: str = "scratch"):
        self.etas, self.lmbdas = member_grid(etas, lmbdas)
        refuse_dropout(layers, "torch")
        ref = Trainer(layers, input_shape, loss=loss, optimizer=optimizer, learning_rate=float(self.etas[0]),
                      l2=0.0, dtype=dtype, seed=seed, init=init)
        self.reference = ref
        self.dtype, self.np_dtype, self.output_shape = ref.dtype, ref.np_dtype, ref.output_shape
        self._body, self._final, self._loss_fn = ref._body, ref._final, ref._loss_fn
        kernel_ids = {id(w) for w in ref._kernels}
        names = [n for n, p in self._body.named_parameters()]
        self._kernels = [n for n, p in self._body.named_parameters() if id(p) in kernel_ids]
        stacked, _ = stack_module_state([self._body] * self.size)
        self.params = {n: stacked[n].detach().clone() for n in names}
        self.optimizer = O.make(optimizer, self.etas, flavor="torch")
        self.frozen = np.zeros(self.size, dtype=bool)
        self._grad = vmap(grad(self._objective, has_aux=True), in_dims=(0, 0, None, None))
        self._forward = vmap(self._logits, in_dims=(0, None))
        self._member_loss = vmap(self._loss_fn, in_dims=(0, None))

    @property
    def size(self) -> int:
        return self.etas.size

    # ------------------------------------------------------------------ one member
    def _logits(self, params, x):
        return functional_call(self._body, params, (x,))

    def _objective(self, params, lmbda, xb, yb):
        """One member's objective, as :class:`torch_models.Trainer` computes it."""
        objective = self._loss_fn(self._logits(params, xb), yb)
        if self._kernels:
            penalty = params[self._kernels[0]].square().sum()
            for k in self._kernels[1:]:
                penalty = penalty + params[k].square().sum()
            objective = objective + lmbda * penalty
        return objective, objective

    # ------------------------------------------------------------------ data
    def tensors(self, x, y, name="x"):
        """Checked canonical NumPy ``x`` and labels or targets ``y`` as tensors (no copy)."""
        return self.reference._tensors(x, y, name)

    # ------------------------------------------------------------------ training
    def train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> np.ndarray:
        """One optimizer step of every member that is not frozen; the objectives (P,) before
        the step. A member whose objective is NaN or inf is frozen now, this step included."""
        self._body.train(True)
        lmbdas = torch.as_tensor(self.lmbdas, dtype=self.dtype)
        grads, objective = self._grad(self.params, lmbdas, xb, yb)
        objective = objective.numpy().astype(np.float64)
        self.frozen |= ~np.isfinite(objective)
        weights = {k: v.numpy() for k, v in self.params.items()}  # views: updated in place
        saved = {k: v[self.frozen] for k, v in weights.items()} if self.frozen.any() else None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            self.optimizer.step(weights, {k: g.numpy() for k, g in grads.items()})
        if saved is not None:
            for k, v in saved.items():
                weights[k][self.frozen] = v
        return objective

    def train_epoch(self, x: torch.Tensor, y: torch.Tensor, batches) -> np.ndarray:
        """Objectives (P, batches) of one epoch over ``batches`` (index arrays)."""
        out = np.empty((self.size, len(batches)))
        for b, idx in enumerate(batches):
            out[:, b] = self.train_step(x[idx], y[idx])
        return out

    def evaluate_batches(self, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = 1000) -> dict:
        """``{"loss": (P,) mean data loss (no L2), "accuracy": (P,)}`` in chunks of
        ``batch_size``, summed as :meth:`torch_models.Trainer.evaluate_batches` sums them."""
        self._body.train(False)
        n = x.shape[0]
        step = n if batch_size is None else int(batch_size)
        total, correct = np.zeros(self.size), np.zeros(self.size)
        with torch.inference_mode():
            for i in range(0, n, step):
                xb, yb = x[i:i + step], y[i:i + step]
                a = self._forward(self.params, xb)  # (P, n, K)
                total += self._member_loss(a, yb).numpy().astype(np.float64) * a.shape[1]
                out = a if self._final is None else self._final(a.flatten(0, 1)).reshape(a.shape)
                correct += correct_counts(out.numpy(), yb.numpy())
        return {"loss": total / n, "accuracy": correct / n}

    def keep(self, mask) -> None:
        """Keep only the members where ``mask`` (P,) is true (weights, rates, L2 factors,
        optimizer state)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.size,):
            raise ValueError(f"mask: expected shape ({self.size},), got {mask.shape}")
        index = torch.from_numpy(np.flatnonzero(mask))
        self.params = {k: v.index_select(0, index) for k, v in self.params.items()}
        self.etas, self.lmbdas, self.frozen = self.etas[mask], self.lmbdas[mask], self.frozen[mask]
        self.optimizer.select(mask)

    def member_state(self, i: int) -> dict:
        """Member ``i``'s weights in the torch layout, ``{parameter name: tensor}`` (copies)."""
        return {k: v[i].clone() for k, v in self.params.items()}
