"""The scratch Sequential: shapes, state dicts, determinism, dtypes, stability, bad input."""
import numpy as np
import pytest

import scratch
from scratch import architectures, losses
from scratch import spec as S
from scratch.layers import conv_output_size

CNN = architectures.get("course_cnn")


def _model(dtype=np.float64, seed=0, layers=CNN, shape=(1, 8, 8), **compile_kw):
    m = scratch.build(layers, shape, dtype=dtype, seed=seed)
    m.compile(**{"loss": "categorical_crossentropy", "optimizer": "sgd", "learning_rate": 0.1, **compile_kw})
    return m


def _data(n=20, shape=(1, 8, 8), dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n,) + shape).astype(dtype), rng.integers(0, 10, size=n)


@pytest.mark.parametrize("size, k, s, pad, expected", [
    (8, 3, 1, "valid", (6, (0, 0))), (7, 3, 2, "valid", (3, (0, 0))), (7, 3, 2, "same", (4, (1, 1))),
    (8, 3, 2, "same", (4, (0, 1))), (6, 2, 1, "same", (6, (0, 1))), (5, 4, 3, "same", (2, (1, 1))),
    (2, 3, 1, "valid", (0, (0, 0))),
])
def test_tensorflow_padding_rule(size, k, s, pad, expected):
    assert conv_output_size(size, k, s, pad) == expected


def test_state_dict_keys_shapes_and_glorot_init():
    m = _model()
    state = m.state_dict()
    assert {k: v.shape for k, v in state.items()} == {
        "0.kernel": (10, 1, 3, 3), "0.bias": (10,), "3.kernel": (90, 50), "3.bias": (50,),
        "4.kernel": (50, 10), "4.bias": (10,)}
    assert all(not v.any() for k, v in state.items() if k.endswith("bias"))
    limit = np.sqrt(6 / (1 * 9 + 10 * 9))
    assert np.abs(state["0.kernel"]).max() <= limit and np.abs(state["0.kernel"]).max() > 0.9 * limit
    assert set(m.gradients()) == set(state)


def test_same_seed_same_training_bit_for_bit_and_other_seed_differs():
    x, y = _data()
    runs = []
    for seed in (3, 3, 4):
        m = _model(seed=seed)
        m.fit(x, y, epochs=2, batch_size=7, seed=1)
        runs.append(m.state_dict())
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not np.array_equal(runs[0]["0.kernel"], runs[2]["0.kernel"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept_end_to_end(dtype):
    x, y = _data(dtype=dtype)
    m = _model(dtype=dtype)
    assert m.forward(x).dtype == dtype
    m.train_step(x, y)
    assert all(v.dtype == dtype for v in m.state_dict().values())
    assert all(v.dtype == dtype for v in m.gradients().values())
    m.forward(x)
    assert m.backward(np.ones((20, 10), dtype=dtype)).dtype == dtype


def test_float32_and_float64_start_from_the_same_weights():
    a, b = _model(np.float32).state_dict(), _model(np.float64).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k].astype(np.float32))


def test_load_state_dict_round_trip_and_checks_before_copying():
    m, other = _model(seed=0), _model(seed=1)
    m.load_state_dict(other.state_dict())
    assert all(np.array_equal(m.state_dict()[k], other.state_dict()[k]) for k in m.state_dict())
    before = m.state_dict()
    bad = other.state_dict()
    bad["0.bias"] = bad["0.bias"] + 1
    bad["4.kernel"] = bad["4.kernel"][:, :5]
    with pytest.raises(ValueError, match=r"4.kernel: shape \(50, 5\) does not match the model's \(50, 10\)"):
        m.load_state_dict(bad)
    assert all(np.array_equal(m.state_dict()[k], before[k]) for k in before), "half copied"
    missing = other.state_dict()
    del missing["3.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['3.bias'\]"):
        m.load_state_dict(missing)
    extra = dict(other.state_dict(), **{"9.kernel": np.zeros(3)})
    with pytest.raises(KeyError, match=r"unexpected keys \['9.kernel'\]"):
        m.load_state_dict(extra)
    wrong_dtype = {k: v.astype(np.float32) for k, v in other.state_dict().items()}
    with pytest.raises(TypeError, match="0.kernel: dtype float32 does not match the model's float64"):
        m.load_state_dict(wrong_dtype)


def test_losses_are_stable_for_huge_logits():
    z = np.array([[1e4, -1e4, 0.0], [-800.0, 800.0, 1.0]])
    y = np.array([[1.0, 0, 0], [1.0, 0, 0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is harmless
        value, grad = losses.get("categorical_crossentropy").value_and_grad(z, y)
        assert np.isfinite(value) and np.isfinite(grad).all()
        assert value == pytest.approx(1600.0 / 2)
        value, grad = losses.get("binary_crossentropy").value_and_grad(z, np.array([[1.0, 0, 1], [0, 1.0, 0]]))
        assert np.isfinite(value) and np.isfinite(grad).all()


def test_training_reduces_loss_with_every_optimizer():
    x, y = _data(n=60)
    for name in ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam"):
        for flavor in ("keras", "torch"):
            m = _model(optimizer=name, flavor=flavor, learning_rate=0.01)
            first = m.train_step(x, y)
            for _ in range(30):
                last = m.train_step(x, y)
            assert last < first, (name, flavor)


def test_divergence_is_reported_not_raised():
    x, y = _data(n=40)
    m = _model(layers=(S.Flatten(), S.Dense(10)), loss="mse", learning_rate=50.0)
    history = m.fit(x, y, epochs=50, batch_size=10)
    assert history[-1]["diverged"] and not np.isfinite(history[-1]["loss"])
    assert len(history) < 50, "training stops at the first diverged epoch"
    assert not any(row["diverged"] for row in history[:-1])


def test_forward_layers_gives_each_spec_entry_output():
    x, _ = _data(n=3)
    m = _model()
    outs = m.forward_layers(x)
    assert [o.shape[1:] for o in outs] == [(10, 6, 6), (10, 3, 3), (90,), (50,), (10,)]
    np.testing.assert_array_equal(outs[-1], m.forward(x))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("x, error, match", [
    (np.zeros((2, 8, 8)), ValueError, r"expected rank 4 input of shape \('N', 1, 8, 8\) \(NCHW\), got shape \(2, 8, 8\)"),
    (np.zeros((2, 3, 8, 8)), ValueError, r"channels mismatch, expected \('N', 1, 8, 8\), got \(2, 3, 8, 8\)"),
    (np.zeros((2, 8, 8, 1)), ValueError, "looks channels-last"),
    (np.zeros((2, 1, 8, 8), dtype=np.float32), TypeError, "dtype float32 does not match the model's float64"),
    (np.full((2, 1, 8, 8), np.nan), ValueError, "NaN or inf"),
    (np.zeros((0, 1, 8, 8)), ValueError, "empty"),
    ([[1.0]], TypeError, "expected a numpy array"),
])
def test_bad_inputs_name_the_argument_and_shapes(x, error, match):
    with pytest.raises(error, match=match):
        _model().forward(x)


def test_labels_out_of_range():
    x, _ = _data(n=4)
    with pytest.raises(ValueError, match=r"labels out of range \[0, 10\].*\[0, 9\]"):
        _model().train_step(x, np.array([0, 1, 2, 10]))


@pytest.mark.parametrize("layers, shape, match", [
    ((S.Conv2D(2, (5, 5)), S.Flatten(), S.Dense(2)), (1, 4, 4), r"layer 0 \(Conv2D\): kernel \(5, 5\) is larger than its padded input \(4, 4\)"),
    ((S.MaxPool2D(3), S.Flatten(), S.Dense(2)), (1, 2, 2), r"layer 0 \(MaxPool2D\): pool window \(3, 3\) is larger"),
    ((S.Dense(3),), (1, 4, 4), r"layer 0 \(Dense\): expects a flat input .* add a Flatten"),
    ((S.Flatten(), S.Conv2D(2, 2)), (1, 4, 4), r"layer 1 \(Conv2D\): expects an input of shape \(channels, height, width\)"),
])
def test_impossible_architectures_fail_at_build(layers, shape, match):
    with pytest.raises(ValueError, match=match):
        scratch.build(layers, shape)


def test_compile_checks():
    m = scratch.build(CNN, (1, 8, 8))
    with pytest.raises(ValueError, match="loss: unknown 'hinge'"):
        m.compile(loss="hinge")
    with pytest.raises(ValueError, match="needs the model to end in a sigmoid"):
        m.compile(loss="binary_crossentropy")
    with pytest.raises(ValueError, match="l2: expected a finite number >= 0"):
        m.compile(l2=-1.0)
    with pytest.raises(RuntimeError, match="not compiled"):
        m.train_step(*_data(n=2))
    with pytest.raises(TypeError, match="dtype: 'int32' is not supported"):
        scratch.build(CNN, (1, 8, 8), dtype="int32")


def test_course_cnn_reaches_95_percent_on_digits():
    """The acceptance run: xfw train with its documented values."""
    from experiments.cli import main

    from experiments import datasets

    data = datasets.digits()
    m = _model(learning_rate=0.1, l2=1e-4)
    history = m.fit(data.x_train, data.y_train, epochs=30, batch_size=100, seed=0,
                    validation_data=(data.x_test, data.y_test))
    assert history[-1]["test_accuracy"] >= 0.95
    assert main(["train", "--epochs", "1", "--limit", "300"]) == 0
