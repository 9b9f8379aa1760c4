"""Each layer-level planted breakage of the parity suite, run in the scratch engine and fed
through check.layer as if it were the user's code, is named first (the generic id when it
is the same mistake, its own name otherwise); the unbroken engine gets no diagnosis."""
import contextlib

import numpy as np
import pytest

import scratch
from experiments import check
from experiments.diagnose import ids
from experiments.diagnose.reverse import LAYER_BREAKAGES
from experiments.parity import breakages as B
from scratch import spec as S

# breakage -> (layer, input shape): shapes on which the mistake shows
CASES = {
    "conv-kernel-transposed": (S.Conv2D(2, 3, activation="relu"), (2, 6, 6)),
    "convolution-not-correlation": (S.Conv2D(2, 3), (2, 6, 6)),
    "flatten-hwc-order": (S.Flatten(), (2, 3, 4)),
    "relu-derivative-missing": (S.Conv2D(2, 3, activation="relu"), (1, 6, 6)),
    "sigmoid-derivative-twice": (S.Dense(4, activation="sigmoid"), (5,)),
    "softmax-diagonal-jacobian": (S.Dense(4, activation="softmax"), (5,)),
    "maxpool-gradient-to-all-ties": (S.MaxPool2D(2), (2, 6, 6)),
    "avgpool-counts-padding": (S.AvgPool2D(2, padding="same"), (2, 5, 5)),
    "same-padding-top-left": (S.Conv2D(2, 3, strides=2, padding="same"), (1, 6, 6)),
    "conv-backward-stride-off-by-one": (S.Conv2D(2, 2, strides=3), (1, 8, 8)),
    "dense-bias-gradient-mean": (S.Dense(3), (4,)),
}


class EngineLayer:
    """A one-layer scratch model as user code: every call runs under ``patch``."""

    def __init__(self, layer, input_shape, patch=None, seed=0):
        self.patch = patch or contextlib.nullcontext
        with self.patch():
            self.model = scratch.build((layer,), input_shape, dtype=np.float64)
        rng = np.random.default_rng(seed)
        self.model.load_state_dict({k: rng.normal(0, 0.5, v.shape) for k, v in self.model.parameters().items()})

    def forward(self, x):
        with self.patch():
            return self.model.forward(x)

    def backward(self, dy):
        with self.patch():
            return self.model.backward(dy)


def _check(name, broken=True):
    """check.layer on the engine (broken by ``name``, or not) with every layout declared."""
    layer, shape = CASES[name]
    user = EngineLayer(layer, shape, B.get(name).patch if broken else None)
    params = user.model.parameters()
    image = len(shape) == 3
    kernel_layout = "out in kh kw" if isinstance(layer, S.Conv2D) else "in out"
    declared = {}
    if "0.kernel" in params:
        declared = dict(params={"kernel": (lambda: params["0.kernel"], kernel_layout),
                                "bias": (lambda: params["0.bias"], "out")},
                        grads={"kernel": lambda: user.model.gradients()["0.kernel"],
                               "bias": lambda: user.model.gradients()["0.bias"]})
    out_image = image and not isinstance(layer, S.Flatten)
    return check.layer(layer, input_shape=shape, forward=user.forward, backward=user.backward,
                       input_layout="n c h w" if image else "n f", output_layout="n c h w" if out_image else "n f",
                       **declared)


def test_every_layer_breakage_has_a_case():
    assert set(CASES) == set(LAYER_BREAKAGES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_unbroken_engine_passes_with_no_diagnosis(name):
    report = _check(name, broken=False)
    assert report.passed, report
    assert report.diagnoses == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_planted_breakage_through_check_layer_is_named_first(name):
    report = _check(name)
    assert not report.passed, report
    assert report.diagnoses, report
    assert report.diagnoses[0].id == ids.BREAKAGE_IDS[name], report
