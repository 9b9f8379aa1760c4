"""The Python API refuses misuse before it changes anything, in words that name what the
caller passed."""
import numpy as np
import pytest

import scratch
import torch_models
from experiments import datasets
from scratch import architectures
from scratch import spec as S

DATA = datasets.digits(limit=300)
LAYERS = architectures.get("course_cnn")


def compiled():
    model = scratch.build(LAYERS, DATA.input_shape, seed=0)
    return model.compile(learning_rate=0.1)


def test_fit_and_evaluate_refuse_lengths_that_differ_before_any_update():
    model = compiled()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"^y: 239 targets for 240 inputs$"):
        model.fit(DATA.x_train, DATA.y_train[:-1], epochs=1)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match=r"^y: 239 targets for 240 inputs$"):
        model.evaluate(DATA.x_train, DATA.y_train[:-1])
    with pytest.raises(ValueError, match=r"^validation y: 59 targets for 60 inputs$"):
        model.fit(DATA.x_train, DATA.y_train, validation_data=(DATA.x_test, DATA.y_test[:-1]))
    with pytest.raises(ValueError, match=r"^validation_data: expected a pair \(x, y\), got tuple of length 1$"):
        model.fit(DATA.x_train, DATA.y_train, validation_data=(DATA.x_test,))


def test_backward_before_forward_says_so():
    model = scratch.build(LAYERS, DATA.input_shape, seed=0)
    with pytest.raises(RuntimeError, match="backward: call forward"):
        model.backward(np.zeros((2, 10)))
    model.forward(DATA.x_train[:2])
    assert model.backward(np.ones((2, 10))).shape == (2, *DATA.input_shape)


def test_unknown_optimizer_argument_names_only_it():
    with pytest.raises(ValueError, match=r"^sgd: unknown hyperparameter\(s\) foo; allowed: momentum, nesterov, "
                                         r"lr_dtype$"):
        scratch.build(LAYERS, DATA.input_shape).compile(optimizer="sgd", foo=1)


@pytest.mark.parametrize("slope", [float("inf"), float("nan"), -0.1])
def test_leaky_relu_slope_must_be_finite(slope):
    with pytest.raises(ValueError, match="negative_slope"):
        S.Activation("leaky_relu", negative_slope=slope)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_torch_refuses_non_finite_weights_and_copies_nothing(bad):
    model = torch_models.build(LAYERS, DATA.input_shape)
    before = [p.detach().clone() for p in model.parameters()]
    state = {k: v.copy() for k, v in compiled().state_dict().items()}
    state["3.bias"][1] = bad
    with pytest.raises(ValueError, match=r"3.bias: contains NaN or inf; weights must be finite"):
        torch_models.from_scratch(model, state)
    assert all(bool((a == b).all()) for a, b in zip(before, model.parameters()))
