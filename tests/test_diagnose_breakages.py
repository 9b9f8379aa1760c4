"""Each planted breakage of the parity suite, applied to the scratch engine and fed to
``diagnose_layer`` as if it were user code, is named first: by the generic id when it is
the same mistake, by its own name otherwise (``experiments.diagnose.ids.BREAKAGE_IDS``)."""
import numpy as np
import pytest

from experiments.diagnose import diagnose_layer, ids
from experiments.diagnose.engine import LayerRun
from experiments.parity import breakages as B
from experiments.parity.tolerances import rtol_for
from scratch import spec as S

RTOL = rtol_for("float64")


def _ties(shape, rng):
    return rng.integers(-2, 3, size=shape).astype(np.float64)  # few values: many tied maxima


# breakage -> (layer, input shape, quantity, x maker)
CASES = {
    "conv-kernel-transposed": (S.Conv2D(2, 3, activation="relu"), (2, 6, 6), "output", None),
    "convolution-not-correlation": (S.Conv2D(2, 3), (2, 6, 6), "output", None),
    "flatten-hwc-order": (S.Flatten(), (2, 3, 4), "output", None),
    "relu-derivative-missing": (S.Conv2D(2, 3, activation="relu"), (1, 6, 6), "kernel gradient", None),
    "sigmoid-derivative-twice": (S.Dense(4, activation="sigmoid"), (5,), "kernel gradient", None),
    "softmax-diagonal-jacobian": (S.Dense(4, activation="softmax"), (5,), "input gradient", None),
    "maxpool-gradient-to-all-ties": (S.MaxPool2D(2), (2, 6, 6), "input gradient", _ties),
    "avgpool-counts-padding": (S.AvgPool2D(2, padding="same"), (2, 5, 5), "output", None),
    "same-padding-top-left": (S.Conv2D(2, 3, strides=2, padding="same"), (1, 6, 6), "output", None),
    "conv-backward-stride-off-by-one": (S.Conv2D(2, 2, strides=3), (1, 8, 8), "input gradient", None),
    "dense-bias-gradient-mean": (S.Dense(3), (4,), "bias gradient", None),
}


def numbers(layer, input_shape, quantity, make_x, patch=None, seed=0):
    rng = np.random.default_rng(seed)
    n = 3
    x = make_x((n,) + input_shape, rng) if make_x else rng.normal(size=(n,) + input_shape)
    run = LayerRun(layer, input_shape, x, {})
    params = {k.split(".")[1]: rng.normal(size=v.shape) for k, v in run.model.parameters().items()}
    dy = rng.normal(size=run.output.shape)
    expected = LayerRun(layer, input_shape, x, params).backward(dy)[quantity]
    got = LayerRun(layer, input_shape, x, params, patch=patch).backward(dy)[quantity]
    return dict(input_shape=input_shape, x=x, dy=dy, params=params, quantity=quantity, got=got,
                expected=expected, rtol=RTOL)


def test_every_layer_breakage_has_a_case():
    from experiments.diagnose.reverse import LAYER_BREAKAGES
    assert set(CASES) == set(LAYER_BREAKAGES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_planted_breakage_is_named(name):
    layer, shape, quantity, make_x = CASES[name]
    kw = numbers(layer, shape, quantity, make_x, B.get(name).patch)
    assert kw["got"].shape == kw["expected"].shape
    found = diagnose_layer(layer, **kw)
    assert found, f"{name}: nothing named"
    assert found[0].id == ids.BREAKAGE_IDS[name], [d.id for d in found]
    assert found[0].residual <= RTOL


def test_stride_off_by_one_at_stride_two_is_stride_ignored():
    """At stride 2, stride - 1 is stride 1: the generic id wins."""
    kw = numbers(S.Conv2D(2, 3, strides=2), (1, 7, 7), "input gradient", None,
                 B.get("conv-backward-stride-off-by-one").patch)
    assert diagnose_layer(S.Conv2D(2, 3, strides=2), **kw)[0].id == ids.STRIDE_IGNORED


@pytest.mark.parametrize("name", sorted(CASES))
def test_correct_numbers_get_no_diagnosis(name):
    layer, shape, quantity, make_x = CASES[name]
    kw = numbers(layer, shape, quantity, make_x)
    assert diagnose_layer(layer, **kw) == []
