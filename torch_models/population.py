"""Population training in PyTorch: P copies of the spec-built model, trained at once, each
with its own learning rate and L2 factor.

Every member starts from the same weights (those of :class:`torch_models.Trainer` with
the same seed and ``init``) and sees the same batches; only ``eta`` and ``lambda`` differ.

* **Weights.** The parameters of the Trainer's model (``torch_models.build`` plus
  :func:`torch_models.from_scratch`), stacked along a leading population axis: a Conv2d
  weight is ``(P, out, in, kh, kw)``, a Linear weight ``(P, out, in)``, a bias ``(P,
  out)``. They live side by side in one ``(P, D)`` buffer (member ``p``'s D numbers in
  row ``p``, parameter after parameter in the model's order); :attr:`Population.params`
  holds views of it.
* **Step.** The model's own modules, run for every member at once by
  :mod:`torch_models.population_layers`: the shared data meet every member's filters of
  the first layer in one product, later layers are batched products, pooling and
  activations run on all members' maps together. The objective of each member is the
  trainer's: the mean data loss (fused with the last activation) ``+ lambda_p *
  sum(W_p**2)`` over kernels. Plain autograd differentiates the sum of the member
  objectives; members never mix, so each member's gradient is its own objective's.
* **Update.** :func:`scratch.optimizers.make` with ``flavor="torch"`` and the (P,)
  learning rates: the single-tensor rules of ``torch.optim`` (SGD with momentum and
  Nesterov, RMSprop, Adagrad, Adam) operation for operation, applied in place to NumPy
  views of the weight buffer (``Tensor.numpy`` shares memory; one ``(P, size)`` view per
  parameter, its gradient in the same layout), member rates broadcast along the
  population axis. The rules are tested against ``torch.optim`` itself
  (``tests/test_optimizers.py``), so one copy of them serves scratch and torch.
* **Divergence.** A member whose objective is NaN or inf is frozen at once: the step
  that produced it and every later one leave its weights as they were. Members never
  mix (every product is per member), so nothing non-finite reaches another one.
  :func:`scratch.population.run_population` drives the epochs, records the epoch of
  divergence and drops the member (:meth:`Population.keep`).

Dropout is not supported (the serial trainer draws its masks from torch's global RNG
in an order a batched step cannot reproduce); such networks train cell by cell.

Data: canonical NCHW tensors of the population's dtype and (N, K) targets, as
:meth:`Population.tensors` makes them from NumPy.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from scratch import optimizers as O
from scratch.population import correct_counts, member_grid, refuse_dropout

from .population_layers import member_losses, stages
from .trainer import Trainer

__all__ = ["Population"]

#: Samples per evaluation pass: the activations of all members stay in cache (measured:
#: 128 and 200 equally fast for 49 members of course_cnn, 300 a third slower).
EVAL_CHUNK = 128


class _Reference(Trainer):
    """The serial trainer's model, loss and data checks, without its ``torch.optim``
    optimizer: the population steps with :mod:`scratch.optimizers` (which checks the
    name), and the first ``torch.optim`` optimizer of a process imports
    ``torch._dynamo``, seconds of start-up (measured 3.6 s)."""

    def _native_optimizer(self, name, learning_rate, hyper):
        return None


class Population:
    """P members of one torch network, trained as one batched model.

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
        The stacked weights, ``(P,) + shape`` each, keyed by the model's parameter names
        (views of one (P, D) buffer).
    frozen : (P,) bool array
        Members whose objective became NaN or inf; their weights no longer change.
    """

    def __init__(self, layers, input_shape, etas, lmbdas, *, loss="categorical_crossentropy", optimizer="sgd",
                 dtype="float64", seed: int = 0, init: str = "scratch"):
        self.etas, self.lmbdas = member_grid(etas, lmbdas)
        refuse_dropout(layers, "torch")
        self.optimizer = O.make(optimizer, self.etas, flavor="torch")
        ref = _Reference(layers, input_shape, loss=loss, optimizer=optimizer, learning_rate=float(self.etas[0]),
                         l2=0.0, dtype=dtype, seed=seed, init=init)
        self.reference = ref
        self.dtype, self.np_dtype, self.output_shape = ref.dtype, ref.np_dtype, ref.output_shape
        self._body, self._final, self._loss = ref._body, ref._final, ref.loss.name
        self._stages = stages(self._body)
        kernel_ids = {id(w) for w in ref._kernels}
        named = list(self._body.named_parameters())
        self._kernels = [n for n, p in named if id(p) in kernel_ids]
        self._shapes = [(n, tuple(p.shape)) for n, p in named]
        one = torch.cat([p.detach().reshape(1, -1) for _, p in named], 1) if named else torch.empty(1, 0)
        self._set_weights(one.to(self.dtype).repeat(self.size, 1))
        self.frozen = np.zeros(self.size, dtype=bool)
        self._buffers = {}

    @property
    def size(self) -> int:
        return self.etas.size

    def _set_weights(self, weights: torch.Tensor) -> None:
        """Adopt ``weights`` (P, D) as the buffer: the parameter views, their (P, size)
        NumPy views (what the optimizer updates in place) and the autograd leaves (aliases
        of the same memory)."""
        self._weights = weights
        self.params, self._arrays, offset = {}, {}, 0
        for name, shape in self._shapes:
            k = math.prod(shape)
            self.params[name] = weights[:, offset:offset + k].view((self.size,) + shape)
            self._arrays[name] = weights.numpy()[:, offset:offset + k]
            offset += k
        self._leaves = {n: v.detach().requires_grad_() for n, v in self.params.items()}
        self._lmbdas = torch.as_tensor(self.lmbdas, dtype=self.dtype)
        self._two_lmbdas = self._lmbdas.unsqueeze(1) * 2  # (P, 1)

    # ------------------------------------------------------------------ passes
    def _logits(self, x, params, training):
        """Every member's loss input in ``features`` layout (P, K, N) for shared ``x``."""
        for stage in self._stages:
            x = stage(x, params, self.size, training)
        return x

    def _objectives(self, xb, yb):
        """``(data losses (P,) on the autograd leaves, objectives (P,) without autograd)`` of
        one batch, each as :class:`torch_models.Trainer` computes it."""
        data = member_losses(self._loss, self._logits(xb, self._leaves, True), yb.T)
        objective = data.detach()
        if self._kernels:
            with torch.no_grad():
                penalty = self._square(self._kernels[0]).sum(1)
                for k in self._kernels[1:]:
                    penalty = penalty + self._square(k).sum(1)
                objective = objective + self._lmbdas * penalty
        return data, objective

    def _scratch(self, name) -> torch.Tensor:
        """A (P, size) buffer for kernel ``name``'s temporaries, kept from step to step (a
        fresh one would have its memory pages faulted in at every step)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] != self.size:
            buf = self._buffers[name] = torch.empty_like(self.params[name].flatten(1))
        return buf

    def _square(self, name) -> torch.Tensor:
        return torch.square(self.params[name].flatten(1), out=self._scratch(name))

    def _gradients(self, data) -> dict:
        """``{name: (P, size) NumPy gradient}`` of the objectives: autograd's gradient of the
        data losses, plus the L2 term's ``lambda_p * (2 * W_p)`` on every kernel, added as
        autograd adds it in the serial trainer (``2 * W`` is exact, so this is the same
        product rounded once, then one addition)."""
        # Members never mix, so the gradient of the sum is each member's own gradient.
        grads = torch.autograd.grad(data.sum(), list(self._leaves.values()))
        out = {}
        for name, g in zip(self._leaves, grads):
            g = g.reshape(self.size, -1)
            if name in self._kernels:
                g.add_(torch.mul(self.params[name].flatten(1), self._two_lmbdas, out=self._scratch(name)))
            out[name] = g.numpy()
        return out

    # ------------------------------------------------------------------ data
    def tensors(self, x, y, name="x"):
        """Checked canonical NumPy ``x`` and labels or targets ``y`` as tensors (no copy)."""
        return self.reference._tensors(x, y, name)

    # ------------------------------------------------------------------ training
    def train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> np.ndarray:
        """One optimizer step of every member that is not frozen; the objectives (P,) before
        the step. A member whose objective is NaN or inf is frozen now, this step included."""
        data, objective = self._objectives(xb, yb)
        grads = self._gradients(data) if self._arrays else {}
        objective = objective.numpy().astype(np.float64)
        self.frozen |= ~np.isfinite(objective)
        weights = self._weights.numpy()
        saved = weights[self.frozen] if self.frozen.any() else None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            self.optimizer.step(self._arrays, grads)  # in place, through the views of the buffer
        if saved is not None:
            weights[self.frozen] = saved
        return objective

    def train_epoch(self, x: torch.Tensor, y: torch.Tensor, batches) -> np.ndarray:
        """Objectives (P, batches) of one epoch over ``batches`` (index arrays)."""
        out = np.empty((self.size, len(batches)))
        for b, idx in enumerate(batches):
            out[:, b] = self.train_step(x[idx], y[idx])
        return out

    def evaluate_batches(self, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = 1000) -> dict:
        """``{"loss": (P,) mean data loss (no L2), "accuracy": (P,)}``. The loss is summed as
        :meth:`torch_models.Trainer.evaluate_batches` sums it (each chunk's mean times its
        size), over chunks of at most ``batch_size`` and :data:`EVAL_CHUNK` samples: the
        same value to rounding, whatever the chunks."""
        n = x.shape[0]
        step = min(n if batch_size is None else int(batch_size), EVAL_CHUNK)
        total, correct = np.zeros(self.size), np.zeros(self.size)
        with torch.inference_mode():
            for i in range(0, n, step):
                xb, yb = x[i:i + step], y[i:i + step]
                a = self._logits(xb, self.params, False)  # (P, K, n)
                total += member_losses(self._loss, a, yb.T).numpy().astype(np.float64) * a.shape[2]
                out = a if self._final is None else self._final(a)  # nn.Softmax(dim=1): over K
                correct += correct_counts(out.transpose(1, 2).numpy(), yb.numpy())
        return {"loss": total / n, "accuracy": correct / n}

    def keep(self, mask) -> None:
        """Keep only the members where ``mask`` (P,) is true (weights, rates, L2 factors,
        optimizer state)."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.size,):
            raise ValueError(f"mask: expected shape ({self.size},), got {mask.shape}")
        index = torch.from_numpy(np.flatnonzero(mask))
        self.etas, self.lmbdas, self.frozen = self.etas[mask], self.lmbdas[mask], self.frozen[mask]
        self._set_weights(self._weights.index_select(0, index))
        self.optimizer.select(mask)

    def member_state(self, i: int) -> dict:
        """Member ``i``'s weights in the torch layout, ``{parameter name: tensor}`` (copies)."""
        return {k: v[i].clone() for k, v in self.params.items()}
