"""All three frameworks together: forward equality after transfer, Keras <-> torch in one
call, the course's own Keras model moved to torch and scratch, and plain-SGD trajectories."""
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

import keras_models  # noqa: E402
import scratch  # noqa: E402
import torch_models  # noqa: E402
from experiments.parity import assert_same  # noqa: E402
from experiments.transfer import keras_to_torch, torch_to_keras  # noqa: E402
from scratch import architectures  # noqa: E402

SHAPES = {"lenet": (1, 28, 28)}


def _torch_forward(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("name", architectures.names())
def test_forward_equal_in_all_three_after_transfer(name):
    shape = SHAPES.get(name, (1, 8, 8))
    layers = architectures.get(name)
    ref = scratch.build(layers, shape, seed=3)
    state = ref.state_dict()
    x = np.random.default_rng(0).random((5,) + shape)
    km = keras_models.build(layers, shape)
    keras_models.from_scratch(km, state)
    tm = torch_models.build(layers, shape)
    torch_models.from_scratch(tm, state)
    expected = ref.forward(x)
    assert_same(expected, keras_models.forward(km, x), case=name, quantity="output", framework="keras")
    assert_same(expected, _torch_forward(tm, x), case=name, quantity="output", framework="torch")


def test_keras_to_torch_and_back_in_one_call_is_bit_exact():
    layers = architectures.get("lenet")
    km = keras_models.build(layers, (1, 28, 28))
    keras_models.from_scratch(km, scratch.build(layers, (1, 28, 28), seed=5).state_dict())
    tm = keras_to_torch(km)
    back = torch_to_keras(tm, (1, 28, 28))
    a, b = keras_models.to_scratch(km), keras_models.to_scratch(back)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    x = np.random.default_rng(1).random((3, 1, 28, 28))
    assert_same(keras_models.forward(km, x), _torch_forward(tm, x), case="lenet", quantity="output",
                framework="torch")


def _course_keras_model(lmbd):
    """The course's create_convolutional_neural_network_keras, written for Keras 3."""
    from keras import layers, regularizers

    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Conv2D(10, (3, 3), activation="relu", kernel_regularizer=regularizers.l2(lmbd)),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dense(50, activation="relu", kernel_regularizer=regularizers.l2(lmbd)),
        layers.Dense(10, activation="softmax", kernel_regularizer=regularizers.l2(lmbd)),
    ])
    return model


def test_the_course_keras_model_moves_to_torch_and_scratch():
    km = _course_keras_model(1e-4)
    assert keras_models.spec_of(km) == architectures.get("course_cnn")
    x = np.random.default_rng(2).random((6, 1, 8, 8)).astype(np.float32)
    tm = keras_to_torch(km)
    sm = scratch.build(keras_models.spec_of(km), (1, 8, 8), dtype=np.float32)
    sm.load_state_dict(keras_models.to_scratch(km))
    expected = keras_models.forward(km, x)
    assert_same(sm.forward(x), expected, case="course keras model", quantity="output", framework="keras")
    assert_same(sm.forward(x), _torch_forward(tm, x), case="course keras model", quantity="output",
                framework="torch")


def test_mismatched_models_are_refused_by_name():
    km = keras_models.build(architectures.get("course_cnn"), (1, 8, 8))
    other = torch_models.build(architectures.get("course_ffnn"), (1, 8, 8))
    before = torch_models.to_scratch(other)
    with pytest.raises(KeyError, match=r"missing keys \['1.kernel', '1.bias', '2.kernel', '2.bias'\].*"
                                       r"'0.kernel': layer 0 is a Flatten, which has no such parameter"):
        keras_to_torch(km, other)
    after = torch_models.to_scratch(other)
    assert all(np.array_equal(before[k], after[k]) for k in before), "half copied"


def test_twenty_sgd_steps_with_l2_give_the_same_weights_in_all_three():
    from experiments import datasets

    data = datasets.digits(limit=400)
    layers = architectures.get("course_cnn")
    kw = dict(loss="categorical_crossentropy", optimizer="sgd", learning_rate=0.05, l2=1e-3, dtype="float64", seed=7)
    trainers = {"scratch": scratch.Trainer(layers, data.input_shape, **kw),
                "keras": keras_models.Trainer(layers, data.input_shape, **kw),
                "torch": torch_models.Trainer(layers, data.input_shape, **kw)}
    from scratch.data import epoch_batches

    batches = [b for e in range(2) for b in epoch_batches(data.x_train.shape[0], 32, 0, e)][:20]
    for idx in batches:
        losses = {fw: t.train_step(data.x_train[idx], data.y_train[idx]) for fw, t in trainers.items()}
        assert losses["keras"] == pytest.approx(losses["scratch"], rel=1e-9)
        assert losses["torch"] == pytest.approx(losses["scratch"], rel=1e-9)
    ref = trainers["scratch"].state_dict()
    for fw in ("keras", "torch"):
        got = trainers[fw].state_dict()
        for key in ref:
            assert_same(ref[key], got[key], case="20 SGD steps", quantity=f"param after step 20 {key}",
                        framework=fw, rtol=1e-9)
