"""Central-difference gradient checks (float64) of every layer kind, loss, L2 and architecture.

Every case checks the gradients of all parameters and of the input; the bound is a max
relative error of 1e-6 (see docs/DESIGN.md, 'Tolerances').
"""
import numpy as np
import pytest

import scratch
from scratch import architectures, gradcheck
from scratch import spec as S

TOL = 1e-6


def _check(layers, input_shape, *, batch=3, loss="categorical_crossentropy", l2=0.0, seed=0, max_entries=None):
    model = scratch.build(layers, input_shape, dtype=np.float64, seed=seed)
    model.compile(loss=loss, optimizer="sgd", learning_rate=0.1, l2=l2)
    rng = np.random.default_rng(seed + 100)
    x = rng.normal(size=(batch,) + tuple(input_shape))
    k = model.output_shape[0]
    if loss == "categorical_crossentropy":
        y = rng.integers(0, k, size=batch)
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, size=(batch, k)).astype(np.float64)
    else:
        y = rng.normal(size=(batch, k))
    errors = gradcheck.check_model(model, x, y, max_entries=max_entries)
    bad = {key: e for key, e in errors.items() if not e <= TOL}
    assert not bad, f"relative errors above {TOL}: {bad}"
    return errors


def _head(units=3, act="softmax"):
    return (S.Flatten(), S.Dense(units, activation=act))


CONV_CASES = {
    "k3-s1-valid-c1": (S.Conv2D(2, (3, 3)), (1, 6, 6)),
    "k3-s2-valid-c3": (S.Conv2D(2, (3, 3), strides=2), (3, 7, 7)),
    "k3-s1-same-c1": (S.Conv2D(2, (3, 3), padding="same"), (1, 5, 5)),
    "k3-s2-same-odd": (S.Conv2D(2, (3, 3), strides=2, padding="same"), (2, 7, 9)),
    "k2x3-s2-same-asym": (S.Conv2D(3, (2, 3), strides=(2, 1), padding="same"), (1, 6, 5)),
    "k4-s3-same-even": (S.Conv2D(2, (4, 4), strides=3, padding="same"), (2, 8, 8)),
    "k1x2-s1x2-valid": (S.Conv2D(2, (1, 2), strides=(1, 2)), (3, 4, 5)),
}


@pytest.mark.parametrize("batch", [1, 4], ids=["batch1", "batch4"])
@pytest.mark.parametrize("case", list(CONV_CASES), ids=list(CONV_CASES))
def test_conv2d(case, batch):
    conv, shape = CONV_CASES[case]
    _check((conv,) + _head(), shape, batch=batch)


POOL_CASES = {
    "2x2-valid": ((2, 2), None, "valid", (2, 6, 6)),
    "3x3-s2-valid-overlap": ((3, 3), (2, 2), "valid", (1, 7, 7)),
    "3x3-s1-same-overlap": ((3, 3), (1, 1), "same", (2, 5, 5)),
    "2x2-s2-same-odd": ((2, 2), None, "same", (1, 7, 5)),
    "2x3-s1x2-same": ((2, 3), (1, 2), "same", (2, 5, 6)),
}


@pytest.mark.parametrize("kind", [S.MaxPool2D, S.AvgPool2D], ids=["max", "avg"])
@pytest.mark.parametrize("case", list(POOL_CASES), ids=list(POOL_CASES))
def test_pooling(kind, case):
    pool, strides, padding, shape = POOL_CASES[case]
    _check((kind(pool, strides=strides, padding=padding),) + _head(), shape, batch=2)


@pytest.mark.parametrize("act", [S.Activation("identity"), S.Activation("relu"), S.Activation("leaky_relu", 0.1),
                                 S.Activation("sigmoid"), S.Activation("tanh"), S.Activation("softmax")],
                         ids=lambda a: a.name)
def test_activation_layers(act):
    layers = (S.Flatten(), S.Dense(6), act, S.Dense(3, activation="softmax"))
    _check(layers, (1, 3, 3), batch=4)


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_fused_conv_activation(act):
    _check((S.Conv2D(3, 2, activation=act),) + _head(), (2, 4, 4), batch=2)


def test_dropout_inference_is_identity_for_gradients():
    _check((S.Flatten(), S.Dense(5, activation="tanh"), S.Dropout(0.5), S.Dense(3, activation="softmax")), (1, 3, 3))


@pytest.mark.parametrize("loss, act", [("categorical_crossentropy", "softmax"), ("binary_crossentropy", "sigmoid"),
                                       ("mse", "identity"), ("mse", "tanh")])
@pytest.mark.parametrize("l2", [0.0, 0.05], ids=["no-l2", "l2"])
def test_losses_and_l2(loss, act, l2):
    _check((S.Conv2D(2, 2), S.Flatten(), S.Dense(4, activation=act)), (1, 4, 4), loss=loss, l2=l2, batch=5)


@pytest.mark.parametrize("name", architectures.names())
def test_registered_architectures(name):
    shape = (1, 28, 28) if name == "lenet" else (1, 8, 8)
    _check(architectures.get(name), shape, batch=2, l2=1e-3, max_entries=40)


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    """The checker can fail: a Dense backward that forgets the transpose's scaling is caught."""
    from scratch.layers import DenseOp

    original = DenseOp.backward

    def wrong(self, dout, need_dx=True):
        dx = original(self, dout, need_dx)
        self.grads["kernel"] *= 1.01
        return dx

    monkeypatch.setattr(DenseOp, "backward", wrong)
    with pytest.raises(AssertionError, match="kernel"):
        _check(_head(), (1, 3, 3))


def test_points_at_a_kink_are_skipped_and_counted(monkeypatch):
    """The digits example: blank pixels and zero biases put ReLU inputs exactly at 0, where
    a central difference straddles the kink and reports an error near 1 for a right
    gradient. Those entries are skipped (and counted); every other entry matches."""
    from experiments import datasets

    data = datasets.digits(dtype=np.float64)
    x, y = data.x_train[:20], data.y_train[:20]
    model = scratch.build(architectures.get("course_cnn"), data.input_shape, dtype=np.float64, seed=0)
    model.compile(loss="categorical_crossentropy", optimizer="sgd", learning_rate=0.1, l2=1e-4)
    skipped = {}
    errors = gradcheck.check_model(model, x, y, skipped=skipped)
    assert max(errors.values()) <= TOL, errors
    assert set(skipped) == set(errors) and skipped["input"] > 0 and skipped["0.bias"] > 0

    # Without the kink test, the straddling differences are wrong by up to 100%.
    monkeypatch.setattr(gradcheck, "_branches", lambda model: [])
    plain = gradcheck.check_model(model, x, y)
    assert plain["input"] > 0.5 and plain["0.bias"] > 0.1
