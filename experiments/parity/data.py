"""The inputs of every parity case: weights, data and upstream gradients, seeded by the case id.

Each case draws from a generator seeded by its id without the dtype, so the float32 and
float64 variants of a case see the same numbers.
"""
from __future__ import annotations

import zlib

import numpy as np

import scratch
from scratch import architectures

from experiments import inputs

from . import cases as C

STEPS = 25
TRAJECTORY_ARCH = "course_cnn"
TRAJECTORY_BATCH = 8


def case_rng(case_id: str, salt: int = 0) -> np.random.Generator:
    """Seeded by the id without its dtype: float32 and float64 cases see the same numbers."""
    base = case_id.rsplit("-", 1)[0]
    return np.random.default_rng([zlib.crc32(base.encode()), salt])


def initial_state(layers, input_shape, dtype, rng) -> dict:
    """Scratch's Glorot weights (seed 1) with random biases: a zero bias hides bias bugs
    (an L2 applied to biases, for one)."""
    ref = scratch.build(layers, input_shape, dtype=np.float64, seed=1)
    state = ref.state_dict()
    for k in state:
        if k.endswith(".bias"):
            state[k] = rng.uniform(-0.5, 0.5, state[k].shape)
    return {k: v.astype(dtype) for k, v in state.items()}


def output_shape(layers, input_shape):
    return scratch.build(layers, input_shape, dtype=np.float64).output_shape


def layer_data(case: C.LayerCase):
    """(state, x, dout) of a layer case, drawn by the generator ``xfw check`` uses
    (:mod:`experiments.inputs`): exact zeros (with bias entry 0 set to 0, so that a zero
    block gives exact 0 pre-activations), ties for max pooling, +-1000 for a softmax."""
    rng = case_rng(case.id)
    state = initial_state(case.layers, case.input_shape, case.dtype, rng)
    layer = case.layers[0]
    state = inputs.zero_bias_entry(state, "0.bias" if getattr(layer, "activation", None) is not None else None)
    ties = case.integer_inputs or inputs.has_ties(layer)
    x = inputs.inputs(case.input_shape, case.batch, rng, ties=ties, large=inputs.has_softmax(layer))
    dout = inputs.upstream((case.batch,) + output_shape(case.layers, case.input_shape), rng)
    return state, x.astype(case.dtype), dout.astype(case.dtype)


def loss_data(case):
    """(state, x, y) of a loss or model case (y: one-hot / 0-1 / real targets)."""
    rng = case_rng(case.id, 1)
    state = initial_state(case.layers, case.input_shape, case.dtype, rng)
    loss = getattr(case, "loss", "categorical_crossentropy")
    # Loss cases get the +-1000 sample (the logits of a fused loss become large); model
    # cases keep moderate inputs (a lenet on +-1000 pixels saturates every unit).
    x = inputs.inputs(case.input_shape, case.batch, rng, large=hasattr(case, "loss"))
    k = output_shape(case.layers, case.input_shape)[0]
    return state, x.astype(case.dtype), inputs.targets(loss, case.batch, k, rng).astype(case.dtype)


def model_data(case: C.ModelCase):
    """(state, x, dout) of the layer-by-layer comparison of a model case."""
    rng = case_rng(case.id, 2)
    state = initial_state(case.layers, case.input_shape, case.dtype, rng)
    x = rng.standard_normal((case.batch,) + tuple(case.input_shape))
    dout = rng.standard_normal((case.batch,) + output_shape(case.layers, case.input_shape))
    return state, x.astype(case.dtype), dout.astype(case.dtype)


def trajectory_data(arch: str, steps: int = STEPS, batch: int = TRAJECTORY_BATCH):
    """``steps`` batches (x, integer labels) for ``arch``, float64."""
    layers, shape = architectures.get(arch), C.arch_input_shape(arch)
    k = output_shape(layers, shape)[0]
    rng = np.random.default_rng([zlib.crc32(f"trajectory-{arch}".encode())])
    return [(rng.standard_normal((batch,) + shape), rng.integers(0, k, batch)) for _ in range(steps)]
