"""check.network: a student's list of layers end to end, compared layer by layer."""
import pytest

from experiments import check
from scratch import spec as S
from students import conv as SC
from students import layers as SL


def _net(conv_bug=None, dense_layout="out (h w c)", pool_bug=None):
    c, p, f, d = SC.LoopConv(bug=conv_bug), SL.LoopMaxPool(pool_bug), SL.FlattenHWC(), SL.Dense(8, 3)
    U = check.UserLayer
    return [U(S.Conv2D(2, 3, activation="relu"), c.forward, c.backward, "h w", "h w c",
              params={"kernel": (lambda: c.K, "(kh kw) out")}, grads={"kernel": lambda: c.dK}),
            U(S.MaxPool2D(2), p.forward, p.backward, "h w c", "h w c"),
            U(S.Flatten(), f.forward, f.backward, "h w c", "(h w c)"),
            U(S.Dense(3, activation="sigmoid"), lambda x: d.forward(x[None])[0], lambda g: d.backward(g[None])[0],
              "(h w c)", "f", params={"kernel": (lambda: d.W, dense_layout), "bias": (lambda: d.b, "out")},
              grads={"kernel": lambda: d.dW, "bias": lambda: d.db})]


def test_student_network_passes_layer_by_layer():
    report = check.network(_net(), input_shape=(1, 6, 6))
    assert report.passed, report
    assert report.summary == ["forward: agrees", "backward: agrees"]
    assert {r["layer"] for r in report.rows} == {0, 1, 2, 3}


def test_dense_rows_in_the_wrong_order_is_the_first_forward_disagreement():
    report = check.network(_net(dense_layout="out in"), input_shape=(1, 6, 6))
    assert not report.passed
    assert report.summary[0] == "forward: first layer that disagrees: layer 3 (Dense(3 units, sigmoid))"
    assert all(r["passed"] for r in report.rows if r["layer"] < 3 and r["quantity"].endswith("output"))


def test_a_backward_bug_is_named_from_the_top():
    report = check.network(_net(pool_bug="ties"), input_shape=(1, 6, 6))
    assert not report.passed
    assert report.summary[0] == "forward: agrees"
    assert report.summary[1].endswith("layer 1 (MaxPool2D(2x2, stride 2, valid))")


def test_network_usage_errors_name_the_layer():
    bad = _net()
    bad[3] = check.UserLayer(S.Dense(3), lambda x: x, input_layout="n q")
    with pytest.raises(check.CheckUsageError, match="layer 3: input_layout"):
        check.network(bad, input_shape=(1, 6, 6))
    with pytest.raises(check.CheckUsageError, match="not a check.UserLayer"):
        check.network([object()], input_shape=(1, 6, 6))
