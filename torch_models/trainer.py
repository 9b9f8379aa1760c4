"""Training in PyTorch under the contract shared by the three frameworks.

:class:`Trainer` takes the same arguments and NumPy data as the scratch engine's
``compile``/``fit`` and reports the same history, so a grid runner can swap frameworks.

Conventions mapped (see docs/DESIGN.md, 'The objective and L2' and 'Optimizer flavours')
-----------------------------------------------------------------------------------------
* **Data.** Canonical NCHW NumPy arrays of the trainer's dtype (checked like scratch:
  rank, shape, dtype, finiteness, by :mod:`scratch.checks`); targets are integer labels ``(N,)`` (one-hot encoded
  by :func:`scratch.data.as_targets`) or ``(N, K)`` floats. Each public call converts its
  arrays once with ``torch.from_numpy`` (no copy); a batch is one index into them.
* **Batches.** :meth:`Trainer.fit` runs :func:`scratch.trainer.run_epochs`, the loop every
  framework shares: same seeded batch order, same history rows, same divergence rule. The
  Trainer implements its :class:`scratch.trainer.EpochTrainer` interface
  (``train_epoch`` loops the tensor step of :meth:`Trainer.train_step`; ``evaluate_batches``).
* **Loss.** Mean over the batch, fused with the final activation as scratch does:
  ``categorical_crossentropy`` = ``F.cross_entropy(logits, target probabilities)``
  (``-sum_k y_k log softmax(z)_k``, mean over the batch) on the model without its final
  ``nn.Softmax(dim=1)``; ``binary_crossentropy`` = ``F.binary_cross_entropy_with_logits``
  (mean over outputs and batch) without the final ``nn.Sigmoid``; ``mse`` =
  ``F.mse_loss`` (mean over all elements) on the full model.
* **L2.** The objective is ``mean data loss + l2 * sum(W**2)`` over kernels (Conv2d and
  Linear weights), never biases: Keras's ``l2(lambda)``. The penalty is added to the loss
  explicitly, so the reported objective is the same number scratch reports. For torch's
  SGD (and its RMSprop, Adagrad, Adam, which also add ``weight_decay * w`` to the
  gradient) the equivalent is ``weight_decay = 2 * l2`` in a parameter group holding the
  kernels only; torch's ``AdamW`` and Keras's ``weight_decay`` are decoupled and are not
  this L2.
* **Optimizers.** Native ``torch.optim`` from the names of ``scratch.optimizers.make``
  (single-tensor path, ``foreach=False``, which is what torch uses on CPU and what the
  scratch ``flavor="torch"`` rules mirror)::

      "sgd"       SGD(lr)                          hyper: momentum, nesterov
      "momentum"  SGD(lr, momentum=0.9)
      "nesterov"  SGD(lr, momentum=0.9, nesterov=True)
      "rmsprop"   RMSprop(lr, alpha=rho, eps=epsilon, momentum, centered)
      "adagrad"   Adagrad(lr, initial_accumulator_value, eps=epsilon)
      "adam"      Adam(lr, betas=(beta_1, beta_2), eps=epsilon)

  Hyperparameters use scratch's (Keras's) names; ``None`` or absent means torch's
  default (RMSprop ``alpha`` 0.99, ``eps`` 1e-8; Adagrad accumulator 0, ``eps`` 1e-10;
  Adam ``eps`` 1e-8).
* **Initial weights.** ``init="scratch"`` (default) copies the seeded scratch
  initialisation (:func:`scratch.build` with the same ``seed``) through
  :func:`torch_models.from_scratch`; ``init="native"`` keeps torch's own initialisation,
  drawn after ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng`` (the caller's
  global RNG is left as it was).
* **Dropout.** torch's masks (not scratch's). ``fit`` draws them from the global RNG
  seeded with ``seed`` inside ``fork_rng``, so a fit is reproducible; a bare
  ``train_step`` uses the caller's global RNG.
* **Divergence.** NaN/inf never raises: the objective comes back as NaN/inf and ``fit``
  marks the epoch ``diverged`` and stops, as scratch does.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import scratch
from scratch import losses as L
from scratch import spec as S
from scratch.checks import check_input, check_input_shape, check_l2, check_seed
from scratch.data import accuracy, as_targets
from scratch.optimizers import BASE_OPTIMIZER, OPTIMIZERS, PRESETS
from scratch.trainer import run_epochs

from .builder import _build, as_torch_dtype, numpy_dtype
from .transfer import from_scratch, to_scratch

__all__ = ["OPTIMIZERS", "Trainer", "configure_worker_threads", "make_optimizer"]

#: Hyperparameters (scratch's names) of each base optimizer (:data:`scratch.optimizers.BASE_OPTIMIZER`).
_HYPER = {
    "sgd": ("momentum", "nesterov"),
    "rmsprop": ("rho", "momentum", "epsilon", "centered"),
    "adagrad": ("initial_accumulator_value", "epsilon"),
    "adam": ("beta_1", "beta_2", "epsilon"),
}
INITS = ("scratch", "native")


def make_optimizer(name: str, params, learning_rate: float, **hyper) -> torch.optim.Optimizer:
    """A native ``torch.optim`` optimizer from a ``scratch.optimizers.make`` name (module docstring)."""
    if name not in BASE_OPTIMIZER:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    base = BASE_OPTIMIZER[name]
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) \
            or not math.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"{name}: learning_rate must be a finite number > 0, got {learning_rate!r}")
    unknown = sorted(set(hyper) - set(_HYPER[base]))
    if unknown:
        raise ValueError(f"{name}: invalid hyperparameter(s) {unknown}; allowed: {list(_HYPER[base])}")
    h = {**PRESETS.get(name, {}), **{k: v for k, v in hyper.items() if v is not None}}
    lr = float(learning_rate)
    try:
        if base == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=h.get("momentum", 0.0),
                                   nesterov=h.get("nesterov", False), foreach=False)
        if base == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, alpha=h.get("rho", 0.99), eps=h.get("epsilon", 1e-8),
                                       momentum=h.get("momentum", 0.0), centered=h.get("centered", False),
                                       foreach=False)
        if base == "adagrad":
            return torch.optim.Adagrad(params, lr=lr, initial_accumulator_value=h.get("initial_accumulator_value", 0.0),
                                       eps=h.get("epsilon", 1e-10), foreach=False)
        return torch.optim.Adam(params, lr=lr, betas=(h.get("beta_1", 0.9), h.get("beta_2", 0.999)),
                                eps=h.get("epsilon", 1e-8), foreach=False)
    except (ValueError, TypeError) as exc:  # torch's own range checks
        raise ValueError(f"{name}: {exc}") from None


_FUSED_MODULE = {"softmax": nn.Softmax, "sigmoid": nn.Sigmoid}


class Trainer:
    """A torch model built from a spec, with the shared training contract.

    Parameters
    ----------
    layers : sequence of :mod:`scratch.spec` layers
    input_shape : tuple
        One sample's canonical shape, ``(C, H, W)`` or ``(F,)``.
    loss : {"categorical_crossentropy", "binary_crossentropy", "mse"}
        As :func:`scratch.losses.get`; the two cross-entropies need the model to end in
        a softmax (resp. sigmoid) activation, which is fused with the loss.
    optimizer : str
        One of :data:`OPTIMIZERS`.
    learning_rate : float
    l2 : float
        Keras's ``l2(lambda)`` on kernels: the objective adds ``l2 * sum(W**2)``.
    dtype : "float32", "float64", a NumPy or torch dtype
    seed : int
        Seeds the initial weights (scratch's initializer or torch's).
    init : {"scratch", "native"}
    **optimizer_kwargs
        Hyperparameters in scratch's names (``momentum``, ``rho``, ``epsilon``, ...).

    Attributes
    ----------
    model : torch.nn.Sequential
        From :func:`torch_models.build`.
    layers, input_shape, output_shape, dtype (torch), loss (a ``scratch.losses.Loss``),
    optimizer (the ``torch.optim`` instance), l2, seed.
    """

    def __init__(self, layers, input_shape, *, loss="categorical_crossentropy", optimizer="sgd",
                 learning_rate=0.01, l2=0.0, dtype="float64", seed=0, init="scratch", **optimizer_kwargs):
        self.layers = S.validate(layers)
        self.input_shape = check_input_shape(input_shape)
        self.dtype = as_torch_dtype(dtype)
        self.np_dtype = numpy_dtype(self.dtype)
        self.seed = check_seed(seed)
        if init not in INITS:
            raise ValueError(f"init: expected one of {INITS}, got {init!r}")
        self.l2 = check_l2(l2)
        self.loss = L.get(loss)

        # Module constructors draw torch's initialisation from the global RNG: fork it so
        # building a Trainer never changes the caller's random stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model, self.output_shape = _build(self.layers, self.input_shape, self.dtype)
        if init == "scratch":
            reference = scratch.build(self.layers, self.input_shape, dtype=self.np_dtype, seed=self.seed)
            from_scratch(self.model, reference.state_dict())
        self.init = init

        fused = self.loss.fused_activation
        if fused:
            last_name, last = list(self.model.named_children())[-1]
            ok = isinstance(last, _FUSED_MODULE[fused]) and (fused != "softmax" or last.dim == 1)
            if not ok:
                raise ValueError(
                    f"loss {self.loss.name!r} needs the model to end in a {fused} activation (it is fused with "
                    f"the loss); the last module is child {last_name!r}: {last!r}"
                )
            self._body = self.model[:-1]  # shares the modules: the logits network
            self._final = last
        else:
            self._body = self.model
            self._final = None
        name = self.loss.name
        if name == "categorical_crossentropy":
            self._loss_fn = F.cross_entropy  # probabilities as targets: -sum y log_softmax(z), batch mean
        elif name == "binary_crossentropy":
            self._loss_fn = F.binary_cross_entropy_with_logits
        else:
            self._loss_fn = F.mse_loss
        self._kernels = [m.weight for m in self.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        self._has_dropout = any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.model.modules())
        self.optimizer_name = optimizer
        self.learning_rate = learning_rate
        self.optimizer = self._native_optimizer(optimizer, learning_rate, optimizer_kwargs)

    def _native_optimizer(self, name, learning_rate, hyper):
        """The ``torch.optim`` instance (:func:`make_optimizer`); a hook for models that
        step their weights otherwise (:class:`torch_models.population.Population`)."""
        return make_optimizer(name, self.model.parameters(), learning_rate, **hyper)

    def __repr__(self):
        return (f"Trainer(loss={self.loss.name!r}, optimizer={self.optimizer_name!r}, "
                f"learning_rate={self.learning_rate!r}, l2={self.l2!r}, dtype={self.np_dtype.name}, "
                f"seed={self.seed}, init={self.init!r})\n{self.model}")

    # ------------------------------------------------------------------ checks
    def check_input(self, x, name: str = "x") -> np.ndarray:
        """``x`` after checking type, rank, shape, dtype and finiteness, as scratch does."""
        return check_input(x, self.input_shape, self.np_dtype, name, owner="trainer")

    def _tensors(self, x, y, name="x"):
        x = self.check_input(x, name)
        y = as_targets(y, self.output_shape[0], self.np_dtype, name="y" if name == "x" else f"{name[:-1]}y")
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"y: {y.shape[0]} targets for {x.shape[0]} inputs")
        return _as_tensor(x), _as_tensor(y)

    def _set_mode(self, training: bool):
        if self.model.training is not training:  # .train() walks every module: only when it changes
            self.model.train(training)

    # ------------------------------------------------------------------ steps
    def _train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> float:
        """One optimizer step on tensors; the objective (data loss + L2) before the step."""
        self._set_mode(True)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss_fn(self._body(xb), yb)
        if self.l2:
            penalty = self._kernels[0].square().sum()
            for w in self._kernels[1:]:
                penalty = penalty + w.square().sum()
            loss = loss + self.l2 * penalty
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def train_step(self, x, y) -> float:
        """One optimizer step on a batch of NumPy data; returns the objective before the step."""
        xt, yt = self._tensors(x, y)
        return self._train_step(xt, yt)

    def train_epoch(self, x: torch.Tensor, y: torch.Tensor, batches) -> list:
        """One step per index array of ``batches`` on already-converted tensors; the
        objective of each batch before its step (:class:`scratch.trainer.EpochTrainer`)."""
        return [self._train_step(x[idx], y[idx]) for idx in batches]

    def evaluate_batches(self, x: torch.Tensor, y: torch.Tensor, batch_size) -> dict:
        """:meth:`evaluate` on already-converted tensors (:class:`scratch.trainer.EpochTrainer`)."""
        self._set_mode(False)
        n = x.shape[0]
        step = _step(n, batch_size)
        total, outs = 0.0, []
        with torch.inference_mode():
            for i in range(0, n, step):
                a = self._body(x[i:i + step])
                total += self._loss_fn(a, y[i:i + step]).item() * a.shape[0]
                outs.append(a if self._final is None else self._final(a))
        return {"loss": total / n, "accuracy": accuracy(torch.cat(outs).numpy(), y.numpy())}

    def evaluate(self, x, y, batch_size: int | None = 1000) -> dict:
        """``{"loss": mean data loss (no L2 term), "accuracy": fraction correct}``."""
        xt, yt = self._tensors(x, y)
        return self.evaluate_batches(xt, yt, batch_size)

    def predict(self, x, batch_size: int | None = 1000) -> np.ndarray:
        """Model outputs (after the final activation), (N, K) NumPy, in inference mode."""
        xt = _as_tensor(self.check_input(x))
        self._set_mode(False)
        n = xt.shape[0]
        step = _step(n, batch_size)
        with torch.inference_mode():
            out = torch.cat([self.model(xt[i:i + step]) for i in range(0, n, step)])
        return out.numpy()

    def fit(self, x, y, *, epochs: int = 1, batch_size: int = 32, seed: int = 0, shuffle: bool = True,
            validation_data=None, progress: bool = False, on_epoch_end=None, evaluate_train: bool = True) -> list:
        """Train with :func:`scratch.trainer.run_epochs`; the history rows are scratch's
        (``epoch``, ``loss``, ``train_loss``, ``train_accuracy``, [``test_loss``,
        ``test_accuracy``], ``diverged``; no ``train_*`` with ``evaluate_train=False``)."""
        xt, yt = self._tensors(x, y)
        val = None
        if validation_data is not None:
            vx, vy = validation_data
            val = self._tensors(vx, vy, "validation x")
        rng = contextlib.nullcontext()
        if self._has_dropout:
            rng = torch.random.fork_rng(devices=[])
        with rng:
            if self._has_dropout:
                torch.manual_seed(int(seed))
            return run_epochs(self, xt, yt, epochs=epochs, batch_size=batch_size, seed=seed, shuffle=shuffle,
                              validation=val, progress=progress, on_epoch_end=on_epoch_end,
                              evaluate_train=evaluate_train)

    # ------------------------------------------------------------------ weights
    def state_dict(self) -> dict:
        """The weights in the scratch layout (copies): ``{"0.kernel": array, ...}``."""
        return to_scratch(self.model)

    def load_state_dict(self, state) -> None:
        """Load scratch-layout weights (checked first; see :func:`torch_models.from_scratch`)."""
        from_scratch(self.model, state)


def _step(n: int, batch_size) -> int:
    if batch_size is None:
        return n
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive int or None, got {batch_size!r}")
    return int(batch_size)


def _as_tensor(a: np.ndarray) -> torch.Tensor:
    if not a.flags.writeable:  # torch.from_numpy warns on read-only memory
        a = a.copy()
    return torch.from_numpy(a)


_INTEROP_SET = False


def configure_worker_threads() -> None:
    """Set up a worker process for many small models: one intra-op and one inter-op
    thread (the parallelism is across processes) and flushing of denormals.

    ``torch.set_num_interop_threads`` may be called once per process, before any
    inter-op work; later calls here skip it. Not called at import. Flushing denormals
    changes results in the last bits for tiny values, so parity tests do not use it.
    """
    global _INTEROP_SET
    torch.set_num_threads(1)
    if not _INTEROP_SET:
        _INTEROP_SET = True
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or inter-op work already started
            pass
    torch.set_flush_denormal(True)
