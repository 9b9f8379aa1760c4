"""Model parity: every registered architecture, float64 and float32:
objective, output and all gradients of one batch (categorical cross-entropy with L2), and a
layer-by-layer comparison that names the first layer where two frameworks disagree.
"""
import dataclasses

import pytest

from experiments.parity import cases as C
from experiments.parity import runner as R
from experiments.parity.testing import check, require
from scratch import architectures

CASES = C.model_cases()


@pytest.mark.parametrize("framework", R.FRAMEWORKS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_model_parity(case, framework):
    results = check(R.run_model_parity(case, (require(framework),)))
    assert R.first_disagreeing_layer(results, framework) is None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_torch_and_keras_agree_layer_by_layer(case):
    """The same comparison without scratch: Keras against torch, entry by entry."""
    results = check(R.run_frameworks_layers(case, require("torch"), require("keras")))
    assert {r.reference for r in results} == {"torch"} and R.first_disagreeing_layer(results, "keras", "torch") is None


def test_every_registered_architecture_is_covered():
    assert {c.arch for c in CASES} == set(architectures.names())


def test_first_disagreeing_layer_reads_forward_then_backward():
    results = R.run_model_parity("course_cnn-float64", (require("torch"),))
    layered = [r for r in results if r.quantity.startswith("layer ")]
    fail = lambda r: dataclasses.replace(r, passed=False)  # noqa: E731
    # Outputs from layer 2 up and a gradient at layer 4 differ: the forward one comes first.
    broken = [fail(r) if (r.layer >= 2 and r.quantity.endswith("output")) or r.layer == 4 else r for r in layered]
    d = R.first_disagreeing_layer(broken, "torch")
    assert (d.layer, d.quantity) == (2, "output") and "layer 2 (Flatten) output" in d.message()
    # Only gradients differ, from layer 3 down: the backward pass breaks at layer 3.
    broken = [fail(r) if r.layer <= 3 and not r.quantity.endswith("output") else r for r in layered]
    d = R.first_disagreeing_layer(broken, "torch")
    assert (d.layer, d.quantity) == (3, "kernel gradient")
    assert R.first_disagreeing_layer(broken, "keras") is None
