"""Student-style broken layers (tests/diagnose_students) are named by the right id first;
the same students without a bug get no diagnosis."""
import numpy as np
import pytest

from experiments.diagnose import diagnose_layer, ids
from experiments.diagnose.engine import LayerRun
from experiments.parity.tolerances import rtol_for
from scratch import spec as S
from tests.diagnose_students import layers as L

RTOL = rtol_for("float64")


def conv_case(bugs, *, k=3, stride=1, padding="valid", act=None, c=2, o=2, h=6, n=4, seed=0):
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(o, c, k, k)), rng.normal(size=o)
    x = rng.normal(size=(n, c, h, h))
    layer = S.Conv2D(o, k, strides=stride, padding=padding, activation=act)
    student = L.LoopConv(W, b, stride, padding, act, bugs)
    y = student.forward(x)
    dy = rng.normal(size=LayerRun(layer, (c, h, h), x, {"kernel": W, "bias": b}).output.shape)
    dx = student.backward(dy) if y.shape == dy.shape else None
    got = {"output": y, "input gradient": dx, "kernel gradient": student.dW, "bias gradient": student.db}
    return layer, (c, h, h), x, dy, {"kernel": W, "bias": b}, got


def named(case, quantity, pre_activation_grad=False):
    layer, shape, x, dy, params, got = case
    expected = LayerRun(layer, shape, x, params).backward(dy, pre_activation_grad=pre_activation_grad)[quantity]
    return diagnose_layer(layer, input_shape=shape, x=x, dy=dy, params=params, quantity=quantity,
                          got=got[quantity], expected=expected, rtol=RTOL, pre_activation_grad=pre_activation_grad)


CONV = [  # (bug, quantity, case options)
    ("kernel-flipped", "output", {}),
    ("kernel-flipped", "input gradient", {}),
    ("kernel-gradient-flipped", "kernel gradient", {}),
    ("kernel-transposed", "output", {}),
    ("in-out-swapped", "output", {}),
    ("one-channel-only", "output", {}),
    ("one-filter-only", "output", {}),
    ("scale", "output", {}),
    ("epsilon", "output", {}),
    ("non-finite", "kernel gradient", {}),
    ("stride-ignored-in-backward", "input gradient", {"stride": 2, "h": 7}),
    ("conv-backward-stride-off-by-one", "input gradient", {"stride": 3, "k": 2, "h": 8}),
    ("padding-side", "output", {"stride": 2, "padding": "same"}),
    ("overlap-overwrites", "input gradient", {}),
    ("batch-mispaired", "input gradient", {}),
    ("batch-mispaired", "kernel gradient", {}),
    ("bias-not-summed", "bias gradient", {}),
    ("activation-derivative-missing", "kernel gradient", {"act": "relu"}),
    ("activation-derivative-at-output", "input gradient", {"act": "sigmoid"}),
    ("activation-derivative-of-upstream", "kernel gradient", {"act": "relu"}),
    ("activation-derivative-extra", "input gradient", {}),
]


@pytest.mark.parametrize("bug,quantity,opts", CONV, ids=[f"{b}-{q}" for b, q, _ in CONV])
def test_loop_conv_bug_is_named_first(bug, quantity, opts):
    found = named(conv_case({bug}, **opts), quantity)
    assert found and found[0].id == bug.replace("kernel-gradient-", "kernel-"), [(d.id, d.residual) for d in found]
    assert found[0].quantity == quantity
    assert found[0].residual <= RTOL or bug == "non-finite"  # nothing finite to measure a residual on


@pytest.mark.parametrize("opts", [{}, {"act": "relu"}, {"act": "sigmoid"}, {"stride": 2, "padding": "same"},
                                  {"stride": 2, "h": 7}])
@pytest.mark.parametrize("quantity", ["output", "input gradient", "kernel gradient", "bias gradient"])
def test_correct_loop_conv_gets_no_diagnosis(opts, quantity):
    assert named(conv_case(set(), **opts), quantity) == []


def test_scale_is_named_one_over_kh():
    found = named(conv_case({"scale"}), "output")
    assert found[0].factor == pytest.approx(1 / 3) and "1/kh" in found[0].text


def test_pair_scale_and_flip_reports_both():
    layer, shape, x, dy, params, got = conv_case({"kernel-flipped"})
    got["output"] = got["output"] * 2
    found = named((layer, shape, x, dy, params, got), "output")
    assert [d.id for d in found[:2]] == ["kernel-flipped", "scale"]
    assert found[0].residual == found[1].residual and found[1].factor == pytest.approx(2)


def test_symmetric_kernel_is_never_called_flipped():
    """On a 180-degree symmetric kernel a flip changes nothing: only the scale is named."""
    layer, shape, x, dy, params, got = conv_case(set())
    w = params["kernel"]
    params = {"kernel": w + w[:, :, ::-1, ::-1], "bias": params["bias"]}
    expected = LayerRun(layer, shape, x, params).output
    found = diagnose_layer(layer, input_shape=shape, x=x, dy=dy, params=params, quantity="output",
                           got=2 * expected, expected=expected, rtol=RTOL)
    assert [d.id for d in found] == ["scale"]


def test_pre_activation_gradient_multiplied_again_is_extra():
    rng = np.random.default_rng(3)
    layer = S.Dense(3, activation="relu")
    x, W, b = rng.normal(size=(4, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)
    dz = rng.normal(size=(4, 3))
    z = x @ W + b
    expected = x.T @ dz
    found = diagnose_layer(layer, input_shape=(5,), x=x, dy=dz, params={"kernel": W, "bias": b},
                           quantity="kernel gradient", got=x.T @ (dz * (z > 0)), expected=expected, rtol=RTOL,
                           pre_activation_grad=True)
    assert found[0].id == ids.ACT_EXTRA


def pool_case(student, layer, shape, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=(3,) + shape).astype(float) if ties else rng.normal(size=(3,) + shape)
    y = student.forward(x)
    dy = rng.normal(size=y.shape)
    got = {"output": y, "input gradient": student.backward(dy) if hasattr(student, "backward") else None}
    return layer, shape, x, dy, {}, got


@pytest.mark.parametrize("bug,k,s,ties", [("ties-all-get-gradient", 2, 2, True),
                                          ("stride-ignored-in-backward", 2, 2, False),
                                          ("overlap-overwrites", 3, 1, True),
                                          ("overlap-overwrites", 3, 2, False)])
def test_loop_maxpool_bug_is_named_first(bug, k, s, ties):
    case = pool_case(L.LoopMaxPool(k, s, {bug}), S.MaxPool2D(k, strides=s), (2, 7, 7), ties=ties)
    found = named(case, "input gradient")
    assert found and found[0].id == bug, [d.id for d in found]


@pytest.mark.parametrize("k,s,ties", [(2, 2, True), (3, 1, True), (3, 2, False)])
def test_correct_loop_maxpool_gets_no_diagnosis(k, s, ties):
    case = pool_case(L.LoopMaxPool(k, s), S.MaxPool2D(k, strides=s), (2, 7, 7), ties=ties)
    assert named(case, "input gradient") == [] and named(case, "output") == []


def test_avgpool_counting_padding_is_named():
    case = pool_case(L.LoopAvgPool(2, {"avgpool-counts-padding"}), S.AvgPool2D(2, padding="same"), (2, 5, 5))
    assert named(case, "output")[0].id == ids.AVGPOOL_COUNTS_PADDING
    assert named(pool_case(L.LoopAvgPool(2), S.AvgPool2D(2, padding="same"), (2, 5, 5)), "output") == []


def dense_case(bugs, act=None, units=4, f=5, seed=0):
    rng = np.random.default_rng(seed)
    W, b, x = rng.normal(size=(f, units)), rng.normal(size=units), rng.normal(size=(3, f))
    student = L.Dense(W, b, act, bugs)
    y = student.forward(x)
    dy = rng.normal(size=y.shape)
    dx = student.backward(dy)
    got = {"output": y, "input gradient": dx, "kernel gradient": student.dW, "bias gradient": student.db}
    return S.Dense(units, activation=act), (f,), x, dy, {"kernel": W, "bias": b}, got


@pytest.mark.parametrize("bug,quantity,act,want", [
    ("in-out-swapped", "output", None, ids.IN_OUT_SWAPPED),
    ("sigmoid-twice", "kernel gradient", "sigmoid", ids.ACT_AT_OUTPUT),
    ("softmax-diagonal-jacobian", "input gradient", "softmax", ids.SOFTMAX_DIAGONAL),
    ("bias-mean", "bias gradient", None, ids.SCALE),
])
def test_dense_bug_is_named_first(bug, quantity, act, want):
    f = 4 if bug == "in-out-swapped" else 5
    found = named(dense_case({bug}, act, f=f), quantity)
    assert found and found[0].id == want, [d.id for d in found]


@pytest.mark.parametrize("act", [None, "sigmoid", "softmax"])
def test_correct_dense_gets_no_diagnosis(act):
    case = dense_case(set(), act)
    for q in ("output", "input gradient", "kernel gradient", "bias gradient"):
        assert named(case, q) == []


def test_flatten_in_hwc_order_is_named():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 2, 4))
    got = L.flatten(x, {"flatten-order"})
    found = diagnose_layer(S.Flatten(), input_shape=(3, 2, 4), x=x, dy=np.zeros_like(got), params={},
                           quantity="output", got=got, expected=L.flatten(x), rtol=RTOL)
    assert found[0].id == ids.FLATTEN_ORDER and "H, W, C" in found[0].text
