"""The epoch loop every framework shares, and the interface it drives.

:func:`run_epochs` is the one training loop of the suite: the scratch engine,
``keras_models.Trainer`` and ``torch_models.Trainer`` all call it from their ``fit``, so
the batch order, the history rows and the divergence rule are the same everywhere. It
talks to a trainer through :class:`EpochTrainer` only.
"""
from __future__ import annotations

import math
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from .data import epoch_batches

__all__ = ["EpochTrainer", "run_epochs"]


@runtime_checkable
class EpochTrainer(Protocol):
    """What :func:`run_epochs` needs from a trainer.

    ``x`` and ``y`` are data the trainer has already checked and converted to its own
    layout and array type (NumPy NCHW for scratch, torch tensors, NHWC TensorFlow
    tensors for Keras); ``y`` holds targets of shape (N, outputs).
    """

    def train_epoch(self, x, y, batches: Sequence[np.ndarray]) -> list[float]:
        """One optimizer step per batch; ``batches`` are index arrays into ``x``/``y``, in
        order. Returns the objective (data loss + L2) of each batch before its step.
        NaN or inf are returned, never raised."""
        ...

    def evaluate_batches(self, x, y, batch_size) -> dict:
        """``{"loss": mean data loss (no L2 term), "accuracy": fraction correct}`` over all
        of ``x``, in chunks of ``batch_size`` (None: all at once), in inference mode."""
        ...


def run_epochs(trainer: EpochTrainer, x, y, *, epochs, batch_size, seed, shuffle, validation, progress,
               on_epoch_end, evaluate_train=True):
    """Train ``trainer`` for ``epochs`` over the shared seeded batch order.

    Batches come from :func:`scratch.data.epoch_batches`, so every framework sees the
    same order. ``validation`` is None or ``(x, y)`` prepared like ``x``, ``y``. Returns
    one row per epoch: ``epoch`` (1-based), ``loss`` (mean objective over the epoch's
    batches), ``train_loss``/``train_accuracy`` (unless ``evaluate_train`` is False),
    ``test_loss``/``test_accuracy`` (with ``validation``) and ``diverged``; training stops
    after the first epoch whose objective is NaN or inf. ``on_epoch_end(row)`` is called
    after each epoch; ``progress`` shows a tqdm bar.
    """
    if not isinstance(trainer, EpochTrainer):
        raise TypeError(f"trainer: {type(trainer).__name__} does not implement scratch.trainer.EpochTrainer "
                        "(train_epoch and evaluate_batches)")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs <= 0:
        raise ValueError(f"epochs: expected a positive int, got {epochs!r}")
    n = x.shape[0]
    epoch_batches(n, batch_size, seed, 0, shuffle)  # validates batch_size before any work
    history = []
    bar = None
    if progress:
        from tqdm.auto import tqdm  # optional display dependency, imported only when asked for

        bar = tqdm(total=epochs, unit="epoch", leave=False)
    try:
        for epoch in range(epochs):
            losses = trainer.train_epoch(x, y, epoch_batches(n, batch_size, seed, epoch, shuffle))
            mean_loss = float(np.mean(losses))
            diverged = not math.isfinite(mean_loss)
            row = {"epoch": epoch + 1, "loss": mean_loss}
            if evaluate_train:
                row.update({f"train_{k}": v for k, v in trainer.evaluate_batches(x, y, 1000).items()})
            if validation is not None:
                row.update({f"test_{k}": v for k, v in trainer.evaluate_batches(*validation, 1000).items()})
            row["diverged"] = diverged
            history.append(row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{mean_loss:.4f}")
            if on_epoch_end is not None:
                on_epoch_end(row)
            if diverged:
                break
    finally:
        if bar is not None:
            bar.close()
    return history
