"""Dropout in training mode across frameworks: each framework drops units with its own
generator, and scratch is given the mask that framework drew, so that the output and the
input gradient show the training-time scale 1/(1-rate) (one mask per comparison)."""
from __future__ import annotations

import zlib
from typing import List

import numpy as np

import scratch
from experiments import inputs
from scratch import spec as S

from . import engines as E
from .compare import Result, compare

from .results import FRAMEWORKS


class _Draws:
    """Stands in for a Generator so that scratch's dropout keeps exactly the units ``keep``
    (its rule is ``keep = random() >= rate`` with 0 < rate < 1)."""

    def __init__(self, keep):
        self.keep = keep

    def random(self, shape):
        assert tuple(shape) == self.keep.shape
        return self.keep.astype(np.float64)


def _framework_dropout(fw, rate, x, dout):
    """(output, input gradient) of ``fw``'s own Dropout in training mode, seeded."""
    if fw == "torch":
        import torch

        torch.manual_seed(0)
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        y = torch.nn.Dropout(rate).train()(xt)
        (g,) = torch.autograd.grad(y, [xt], torch.from_numpy(dout.copy()))
        return y.detach().numpy(), g.numpy()
    E.make("keras")
    import keras
    import tensorflow as tf

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = keras.layers.Dropout(rate, seed=0, dtype=str(x.dtype))(xt, training=True)
    return np.asarray(y), np.asarray(tape.gradient(y, xt, output_gradients=tf.constant(dout)))


def run_dropout_training(dtype="float64", rate=0.5, frameworks=FRAMEWORKS, shape=(30,), batch=7) -> List[Result]:
    """Dropout in training mode with one mask: each framework drops units with its own
    generator, and scratch is given the same mask (read off the framework's input gradient,
    which is nonzero exactly where a unit is kept: the upstream gradient is never 0), so the
    output and the input gradient show the training-time scale 1/(1-rate)."""
    rng = np.random.default_rng([zlib.crc32(f"dropout-train-{rate}".encode())])
    x = inputs.inputs(shape, batch, rng).astype(dtype)
    dout = (inputs.upstream((batch,) + shape, rng) + 5.0).astype(dtype)  # never 0
    out = []
    for fw in frameworks:
        y_fw, dx_fw = _framework_dropout(fw, rate, x, dout)
        op = scratch.build((S.Dropout(rate),), shape, dtype=dtype).ops[0]
        op.rng = _Draws(dx_fw != 0)
        y, dx = op.forward(x, True), op.backward(dout)
        kw = dict(case=f"dropout-train-{rate}-b{batch}-{dtype}", framework=fw, dtype=dtype)
        out += [compare(y, y_fw, quantity="output", **kw), compare(dx, dx_fw, quantity="input gradient", **kw)]
    return out
