"""Tests of keras_models: the builder, weight transfer, spec_of and the Trainer, each
against the scratch engine (see docs/DESIGN.md, 'Canonical layout' and 'Tolerances').

Every Keras model is built once per (case, dtype) and reused; data are small and seeded;
``model.fit`` is never called. float64 comparisons use ``rtol=1e-10`` (forward outputs,
gradients) and ``1e-9`` (training trajectories); the absolute tolerance is 1e-13 (resp.
1e-12) times the largest magnitude of the expected array, for entries that are ~0.
"""
from __future__ import annotations

import ast
import logging
import pathlib

import numpy as np
import pytest
import keras_models as km  # first: it sets the Keras environment (conftest imported torch before it)
import keras
import tensorflow as tf
from keras import layers as KL
from keras import regularizers

import scratch  # noqa: E402
from scratch import architectures as A  # noqa: E402
from scratch import optimizers as SO  # noqa: E402
from scratch import spec as S  # noqa: E402

DTYPES = ("float64", "float32")
# (rtol, atol relative to the largest |expected|): float64 as in docs/DESIGN.md, 'Tolerances'; float32
# allows for other summation orders (oneDNN/Eigen vs NumPy's BLAS).
TOL = {"float64": (1e-10, 1e-13), "float32": (1e-5, 1e-6)}
TRAJECTORY_TOL = (1e-9, 1e-12)  # float64, after many optimizer steps
LEAKY = S.Activation("leaky_relu", 0.1)


def _cases():
    cases = {name: (A.get(name), (1, 28, 28) if name == "lenet" else (1, 8, 8)) for name in A.names()}
    cases.update({
        # "same" with stride 2 for a convolution and a max pool (the odd row/column at the end).
        "same_stride2": ((S.Conv2D(4, (3, 3), strides=(2, 2), padding="same", activation="relu"),
                          S.MaxPool2D((3, 3), strides=(2, 2), padding="same"),
                          S.Flatten(), S.Dense(5, activation="softmax")), (1, 8, 8)),
        # Non-square kernels, pools and strides, 3 input channels, odd sizes, fused leaky_relu.
        "non_square": ((S.Conv2D(5, (2, 3), strides=(1, 2), activation="tanh"),
                        S.AvgPool2D((2, 3), strides=(1, 2), padding="same"),
                        S.Conv2D(4, (3, 2), padding="same", activation=LEAKY),
                        S.MaxPool2D((3, 2), strides=(2, 1)),
                        S.Flatten(), S.Dense(6, activation="sigmoid"), S.Dense(3)), (3, 9, 7)),
        # "same" average pooling over an odd input: border windows hold fewer real cells.
        "avg_pool_same": ((S.AvgPool2D((3, 3), strides=(2, 2), padding="same"), S.Conv2D(3, (1, 1)),
                           S.Flatten(), S.Dense(4, activation="softmax")), (2, 7, 5)),
        # Standalone activations (leaky_relu 0.1, identity, softmax) and a Dropout between
        # the Flatten and the Dense whose rows are permuted.
        "standalone": ((S.Conv2D(3, (3, 3)), LEAKY, S.MaxPool2D((3, 3), strides=(1, 1), padding="same"),
                        S.Flatten(), S.Dropout(0.5), S.Activation("identity"), S.Dense(4),
                        S.Activation("softmax")), (1, 6, 6)),
        "three_channels": (A.get("course_cnn"), (3, 8, 8)),
        "flat_input": ((S.Dense(7, activation=LEAKY), S.Dense(3, activation="sigmoid")), (12,)),
        # A Flatten straight on a 3-channel input: the permuted Dense is the first layer with weights.
        "flatten_first": ((S.Flatten(), S.Dense(5, activation="softmax")), (3, 4, 5)),
    })
    return cases


CASES = _cases()
_MODELS: dict = {}


def pair(case: str, dtype: str):
    """(scratch model, Keras model with the scratch weights, Keras model of every layer's output), cached."""
    key = (case, dtype)
    if key not in _MODELS:
        layers, shape = CASES[case]
        sm = scratch.build(layers, shape, dtype=dtype, seed=1)
        m = km.build(layers, shape, dtype=dtype)
        km.from_scratch(m, sm.state_dict())
        taps = keras.Model(m.inputs[0], [layer.output for layer in m.layers])
        _MODELS[key] = (sm, m, taps)
    return _MODELS[key]


def nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def nchw(x):
    x = np.asarray(x)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def assert_close(actual, expected, dtype, what, tol=None):
    """Shape, then dtype, then values (rtol; atol relative to the largest |expected|)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    assert actual.dtype == expected.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}/{expected.dtype}"
    rtol, atol = tol or TOL[dtype]
    scale = float(np.max(np.abs(expected), initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * max(scale, 1e-30), err_msg=what)


def data(shape, n, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape)).astype(dtype)


# --------------------------------------------------------------------------- build
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_build_matches_spec(case, dtype):
    layers, shape = CASES[case]
    sm, m, _ = pair(case, dtype)
    assert len(m.layers) == len(layers)
    assert km.input_shape_of(m) == shape
    assert tuple(m.inputs[0].shape[1:]) == ((shape[1], shape[2], shape[0]) if len(shape) == 3 else shape)
    outs = [None] * len(layers)
    for op in sm.ops:
        outs[op.index] = op.output_shape
    for i, (layer, out) in enumerate(zip(m.layers, outs)):
        keras_out = tuple(layer.output.shape[1:])
        canonical = (keras_out[2], keras_out[0], keras_out[1]) if len(keras_out) == 3 else keras_out
        assert canonical == out, f"layer {i} '{layer.name}': Keras {keras_out}, scratch {out}"
        assert layer.name.endswith(f"_{i}") and layer.compute_dtype == dtype
    assert all(v.dtype == dtype for v in m.weights)
    assert km.spec_of(m) == tuple(layers)


# --------------------------------------------------------------------------- transfer
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_round_trips_are_bit_exact(case, dtype):
    layers, shape = CASES[case]
    sm, m, _ = pair(case, dtype)
    state = sm.state_dict()
    back = km.to_scratch(m)
    assert list(back) == list(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k
    # Keras -> scratch -> Keras, from Keras's own (seeded) initial weights.
    native = km.build(layers, shape, dtype=dtype, seed=7)
    other = km.build(layers, shape, dtype=dtype)
    km.from_scratch(other, km.to_scratch(native))
    for a, b in zip(native.weights, other.weights):
        assert np.array_equal(a.numpy(), b.numpy()), a.path


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_forward_matches_scratch(case, dtype, batch):
    _, shape = CASES[case]
    sm, m, taps = pair(case, dtype)
    x = data(shape, batch, dtype, seed=batch)
    expected = sm.forward_layers(x)
    outs = taps(nhwc(x))
    order = None  # between a Flatten of an image and the next Dense, Keras's features are H, W, C
    for i, (layer, out, ref) in enumerate(zip(CASES[case][0], outs, expected)):
        if isinstance(layer, S.Flatten) and len(sm.ops[[op.index for op in sm.ops].index(i)].input_shape) == 3:
            order = np.argsort(km.flatten_permutation(sm.ops[[op.index for op in sm.ops].index(i)].input_shape))
        elif isinstance(layer, S.Dense):
            order = None
        out = nchw(out) if order is None else np.asarray(out)[:, order]
        assert_close(out, ref, dtype, f"{case}: output of layer {i} '{m.layers[i].name}'")
    assert_close(km.forward(m, x), expected[-1], dtype, f"{case}: keras_models.forward")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_scratch(case, dtype):
    """Input and parameter gradients for a random upstream gradient (a sum would hide a transpose)."""
    layers, shape = CASES[case]
    sm, m, _ = pair(case, dtype)
    x = data(shape, 4, dtype, seed=3)
    out = sm.forward(x)
    g = np.random.default_rng(4).standard_normal(out.shape).astype(dtype)
    dx = sm.backward(g)
    xt = tf.constant(nhwc(x))
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = m(xt, training=False)
    grads = tape.gradient(y, [xt] + m.trainable_variables, output_gradients=tf.constant(nhwc(g)))
    assert_close(nchw(grads[0]), dx, dtype, f"{case}: input gradient")
    holder = km.build(layers, shape, dtype=dtype)  # gradients in Keras layout -> scratch layout
    for v, gv in zip(holder.trainable_variables, grads[1:]):
        v.assign(gv)
    for k, ref in sm.gradients().items():
        assert_close(km.to_scratch(holder)[k], ref, dtype, f"{case}: gradient of {k}")


def test_flatten_permutation_is_explicit():
    perm = km.flatten_permutation((2, 3, 4))
    # Keras feature p = (h, w, c) in H, W, C order is scratch feature c*12 + h*4 + w.
    h, w, c = np.unravel_index(np.arange(24), (3, 4, 2))
    assert np.array_equal(perm, c * 12 + h * 4 + w)
    assert km.layout.TRANSPOSED == {("Conv2D", "kernel"): (2, 3, 1, 0)}


# --------------------------------------------------------------------------- Keras internals
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_ties_route_to_the_first_maximum(dtype):
    """Integer inputs make many ties; output and input gradient equal scratch's."""
    for layer in (S.MaxPool2D((2, 2)), S.MaxPool2D((3, 3), strides=(2, 2), padding="same"),
                  S.MaxPool2D((2, 3), strides=(1, 1), padding="same")):
        sm = scratch.build((layer,), (2, 7, 7), dtype=dtype)
        m = km.build((layer,), (2, 7, 7), dtype=dtype)
        x = np.random.default_rng(0).integers(0, 3, (3, 2, 7, 7)).astype(dtype)
        out = sm.forward(x)
        g = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
        dx = sm.backward(g)
        xt = tf.constant(nhwc(x))
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = m(xt)
        assert np.array_equal(nchw(y), out)
        assert_close(nchw(tape.gradient(y, xt, output_gradients=tf.constant(nhwc(g)))), dx, dtype,
                     f"{layer}: input gradient with ties")


def test_avg_pool_same_excludes_padded_cells():
    m = km.build((S.AvgPool2D((3, 3), strides=(2, 2), padding="same"),), (1, 5, 5))
    out = km.forward(m, np.ones((1, 1, 5, 5)))
    assert np.array_equal(out, np.ones((1, 1, 3, 3)))  # with padded zeros counted, borders would be < 1


def test_leaky_relu_slope_is_kept():
    """TensorFlow's LeakyRelu op keeps its slope in float32; the builder's layer does not."""
    spec = (S.Dense(4, activation=LEAKY), LEAKY)
    m = km.build(spec, (3,))
    assert isinstance(m.layers[0].activation, KL.LeakyReLU) and m.layers[0].activation.negative_slope == 0.1
    assert isinstance(m.layers[1], KL.LeakyReLU) and m.layers[1].negative_slope == 0.1
    x = -np.linspace(0.5, 2.0, 8).reshape(2, 4)
    stock = keras.Sequential([keras.Input((4,), dtype="float64"), KL.LeakyReLU(negative_slope=0.1, dtype="float64")])
    exact = keras.Sequential([keras.Input((4,), dtype="float64"), km.ExactLeakyReLU(negative_slope=0.1, dtype="float64")])
    assert np.array_equal(km.forward(exact, x), x * 0.1)
    assert np.array_equal(km.forward(stock, x), x * float(np.float32(0.1)))  # the cause: a float32 attribute
    assert km.spec_of(stock) == (S.Activation("leaky_relu", float(np.float32(0.1))),)
    assert km.spec_of(exact) == (LEAKY,)


@pytest.mark.parametrize("fn,cls_index", [(keras.losses.categorical_crossentropy, 0),
                                          (keras.losses.binary_crossentropy, 1)])
def test_keras_loss_functions_use_the_logits(fn, cls_index):
    """On the TF backend the loss functions unwrap the softmax/sigmoid (in a tf.function too);
    the floatx class losses (float32) lose the logits of a float64 model and clip at 1e-7."""
    act = ("softmax", "sigmoid")[cls_index]
    m = keras.Sequential([keras.Input((1,), dtype="float64"), KL.Dense(2, activation=act, dtype="float64")])
    m.layers[0].kernel.assign(np.array([[500.0, -500.0]]))
    x, y = tf.constant([[1.0]], tf.float64), tf.constant([[0.0, 1.0]], tf.float64)
    fused = tf.function(lambda a, b: tf.reduce_mean(fn(b, m(a))))(x, y)
    assert float(fused) == pytest.approx(1000.0 if act == "softmax" else 500.0, rel=1e-12)
    cls = (keras.losses.CategoricalCrossentropy, keras.losses.BinaryCrossentropy)[cls_index]
    assert float(cls()(y, m(x))) < 20  # clipped probabilities: -log(1e-7) = 16.1
    assert float(cls(dtype="float64")(y, m(x))) == pytest.approx(float(fused), rel=1e-12)


def test_stock_l2_rounds_lambda_through_float32():
    w = keras.Variable(np.ones((2, 2)), dtype="float64")
    assert float(regularizers.l2(1e-3)(w)) == 4 * float(np.float32(1e-3))
    assert float(km.ExactL2(1e-3)(w)) == 4 * 1e-3


# --------------------------------------------------------------------------- spec_of
def course_model(lam, **kw):
    """The course's Keras CNN, written as a Keras 3 user writes it."""
    l2 = regularizers.l2
    return keras.Sequential([
        keras.Input((8, 8, 1), **kw),
        KL.Conv2D(10, (3, 3), activation="relu", kernel_regularizer=l2(lam), **kw),
        KL.MaxPooling2D((2, 2), **kw),
        KL.Flatten(**kw),
        KL.Dense(50, activation="relu", kernel_regularizer=l2(lam), **kw),
        KL.Dense(10, activation="softmax", kernel_regularizer=l2(lam), **kw),
    ])


@pytest.mark.parametrize("dtype", DTYPES)
def test_course_model_reads_back_and_moves_to_scratch(dtype):
    m = course_model(1e-3, **({"dtype": dtype} if dtype == "float64" else {}))
    assert km.spec_of(m) == A.get("course_cnn")
    assert km.input_shape_of(m) == (1, 8, 8)
    assert km.l2_of(m) == float(np.float32(1e-3))
    sm = scratch.build(km.spec_of(m), km.input_shape_of(m), dtype=dtype)
    sm.load_state_dict(km.to_scratch(m))
    x = data((1, 8, 8), 6, dtype)
    assert_close(sm.forward(x), nchw(m(nhwc(x))), dtype, "course model: scratch vs Keras output")


def test_spec_of_reads_common_idioms():
    m = keras.Sequential([
        keras.Input((6, 6, 2)),
        KL.Conv2D(3, 3, padding="same", activation="leaky_relu"),
        KL.ReLU(), KL.LeakyReLU(), KL.AveragePooling2D(2, padding="same"), KL.Activation("tanh"),
        KL.Flatten(), KL.Dropout(0.25), KL.Dense(5, activation="linear"), KL.Activation("linear"),
        KL.Dense(4), KL.Softmax(),
    ])
    f32 = lambda v: float(np.float32(v))  # noqa: E731  what TensorFlow's LeakyRelu applies
    assert km.spec_of(m) == (
        S.Conv2D(3, (3, 3), padding="same", activation=S.Activation("leaky_relu", f32(0.2))),
        S.Activation("relu"), S.Activation("leaky_relu", f32(0.3)), S.AvgPool2D((2, 2), padding="same"),
        S.Activation("tanh"), S.Flatten(), S.Dropout(0.25), S.Dense(5), S.Activation("identity"),
        S.Dense(4), S.Activation("softmax"),
    )
    assert km.input_shape_of(m) == (2, 6, 6) and km.l2_of(m) == 0.0
    sm = scratch.build(km.spec_of(m), (2, 6, 6), dtype="float32")
    sm.load_state_dict(km.to_scratch(m))
    x = data((2, 6, 6), 3, "float32")
    assert_close(sm.forward(x), km.forward(m, x), "float32", "idioms: scratch vs Keras output")


@pytest.mark.parametrize("layer,match", [
    (lambda: KL.BatchNormalization(), "batch_normalization.*BatchNormalization.*supported: Conv2D"),
    (lambda: KL.Conv2D(4, 3, dilation_rate=2), "dilation_rate"),
    (lambda: KL.Conv2D(4, 3, groups=2), "groups=2"),
    (lambda: KL.Conv2D(4, 3, use_bias=False), "use_bias=False"),
    (lambda: KL.Conv2D(4, 1, data_format="channels_first"), "channels_first"),
    (lambda: KL.MaxPooling2D(data_format="channels_first"), "channels_first"),
    (lambda: KL.Conv2D(4, 3, activation="gelu"), "activation 'gelu'"),
    (lambda: KL.ReLU(max_value=6.0), "max_value=6.0"),
    (lambda: KL.Dense(3), "cannot represent"),  # a Dense on an image: Keras allows it, the spec does not
])
def test_spec_of_rejects_unsupported_layers(layer, match):
    m = keras.Sequential([keras.Input((8, 8, 2)), KL.Conv2D(2, 1, name="first"), layer()])
    with pytest.raises(ValueError, match=f"layer 1 .*{match}"):
        km.spec_of(m)
    with pytest.raises(ValueError, match="layer 1"):
        km.to_scratch(m)


def test_spec_of_needs_a_sequential_with_an_input():
    inp = keras.Input((4,))
    with pytest.raises(TypeError, match="keras.Sequential"):
        km.spec_of(keras.Model(inp, KL.Dense(2)(inp)))
    with pytest.raises(ValueError, match="no input shape"):
        km.spec_of(keras.Sequential([KL.Dense(2)]))


# --------------------------------------------------------------------------- transfer errors
def test_transfer_errors_name_layer_key_and_shapes():
    sm, m, _ = pair("course_cnn", "float64")
    before = [v.numpy().copy() for v in m.weights]
    state = sm.state_dict()
    state["0.kernel"] = state["0.kernel"] + 1.0  # valid, but must not be copied: layer 3 is wrong
    state["3.kernel"] = np.zeros((91, 50))
    with pytest.raises(ValueError, match=r"layer 3 'dense_3' \(Dense\): 3.kernel has shape \(91, 50\), "
                                         r"the Keras model needs \(90, 50\)"):
        km.from_scratch(m, state)
    conv = sm.state_dict()
    conv["0.kernel"] = np.zeros((10, 1, 3, 2))
    with pytest.raises(ValueError, match=r"layer 0 'conv2d_0'.*\(10, 1, 3, 2\).*\(10, 1, 3, 3\).*\(3, 3, 1, 10\)"):
        km.from_scratch(m, conv)
    missing = sm.state_dict()
    del missing["4.bias"]
    with pytest.raises(KeyError, match=r"missing keys \['4.bias'\]"):
        km.from_scratch(m, missing)
    extra = {**sm.state_dict(), "2.kernel": np.zeros(3)}
    with pytest.raises(KeyError, match=r"unexpected keys \['2.kernel'\].*'flatten_2' is a Flatten"):
        km.from_scratch(m, extra)
    beyond = {**sm.state_dict(), "9.bias": np.zeros(3)}
    with pytest.raises(KeyError, match="only 5 layers"):
        km.from_scratch(m, beyond)
    wrong_dtype = {k: v.astype(np.float32) for k, v in sm.state_dict().items()}
    with pytest.raises(TypeError, match=r"layer 0 'conv2d_0'.*0.kernel has dtype float32, the Keras variable is float64"):
        km.from_scratch(m, wrong_dtype)
    nan = sm.state_dict()
    nan["4.bias"][0] = np.nan
    with pytest.raises(ValueError, match="4.bias.*NaN"):
        km.from_scratch(m, nan)
    for v, b in zip(m.weights, before):  # nothing was half copied
        assert np.array_equal(v.numpy(), b), v.path


def test_layout_errors_are_clear():
    sm, m, _ = pair("course_cnn", "float64")
    x = data((1, 8, 8), 4, "float64")
    with pytest.raises(ValueError, match=r"channels-last \(NHWC\).*transpose"):
        km.forward(m, nhwc(x))  # the canonical API takes NCHW
    with pytest.raises(ValueError, match="incompatible"):
        m(x)  # channels-first data straight into the NHWC Keras model: Keras's own error
    with pytest.raises(TypeError, match="float32 does not match the model's float64"):
        km.forward(m, x.astype(np.float32))


# --------------------------------------------------------------------------- Trainer
def batches(n, size, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.permutation(n)[:size] for _ in range(steps)]


def assert_same_state(actual, expected, what):
    assert list(actual) == list(expected)
    for k in expected:
        assert_close(actual[k], expected[k], "float64", f"{what}: {k}", tol=TRAJECTORY_TOL)


@pytest.fixture(scope="module")
def digits_like():
    rng = np.random.default_rng(0)
    return rng.standard_normal((64, 1, 8, 8)), rng.integers(0, 10, 64)


@pytest.mark.parametrize("optimizer", SO.OPTIMIZERS)
def test_trainer_steps_match_scratch(optimizer, digits_like):
    """SGD (20 steps, l2=1e-3) and every other optimizer (10 steps) on course_cnn in float64."""
    x, y = digits_like
    steps = 20 if optimizer == "sgd" else 10
    lr = 0.05 if optimizer in ("sgd", "momentum", "nesterov") else 0.01
    spec = A.get("course_cnn")
    t = km.Trainer(spec, (1, 8, 8), optimizer=optimizer, learning_rate=lr, l2=1e-3, seed=1)
    sm = scratch.build(spec, (1, 8, 8), seed=1).compile("categorical_crossentropy", optimizer, learning_rate=lr,
                                                        l2=1e-3, flavor="keras")
    assert_same_state(t.state_dict(), sm.state_dict(), "initial weights")
    for i, idx in enumerate(batches(64, 16, steps)):
        a, b = sm.train_step(x[idx], y[idx]), t.train_step(x[idx], y[idx])
        assert b == pytest.approx(a, rel=1e-9), f"objective of step {i}"
    assert_same_state(t.state_dict(), sm.state_dict(), f"{optimizer}: weights after {steps} steps")
    assert t._step_fn.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("loss,last", [("categorical_crossentropy", "softmax"), ("binary_crossentropy", "sigmoid"),
                                       ("mse", "tanh")])
def test_trainer_losses_match_scratch_and_are_fused(loss, last):
    spec = (S.Dense(7, activation=LEAKY), S.Dense(3, activation=last))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 12))
    y = rng.integers(0, 3, 20) if loss == "categorical_crossentropy" else (rng.random((20, 3)) > 0.5).astype(float)
    t = km.Trainer(spec, (12,), loss=loss, optimizer="adam", learning_rate=0.01, l2=1e-2, seed=3)
    sm = scratch.build(spec, (12,), seed=3).compile(loss, "adam", learning_rate=0.01, l2=1e-2)
    for idx in batches(20, 8, 5):
        assert t.train_step(x[idx], y[idx]) == pytest.approx(sm.train_step(x[idx], y[idx]), rel=1e-9)
    assert_same_state(t.state_dict(), sm.state_dict(), f"{loss}: weights")
    # Saturated outputs: fused losses see the logits (no 1e-7 clipping, which caps a loss at 16.1).
    big = sm.state_dict()
    big["1.kernel"] = big["1.kernel"] * 1e3
    sm.load_state_dict(big)
    t.load_state_dict(big)
    ref = sm.evaluate(x, y)
    got = t.evaluate(x, y)
    assert got["loss"] == pytest.approx(ref["loss"], rel=1e-9) and got["accuracy"] == ref["accuracy"]
    if loss != "mse":
        assert ref["loss"] > 100
    assert t.train_step(x[:8], y[:8]) == pytest.approx(sm.train_step(x[:8], y[:8]), rel=1e-9)


def test_fit_history_matches_scratch(digits_like):
    x, y = digits_like
    x, y, vx, vy = x[:50], y[:50], x[50:], y[50:]  # 50 samples, batch 16: a last batch of 2
    spec = A.get("course_cnn")
    t = km.Trainer(spec, (1, 8, 8), learning_rate=0.05, l2=1e-3, seed=2)
    sm = scratch.build(spec, (1, 8, 8), seed=2).compile("categorical_crossentropy", "sgd", learning_rate=0.05,
                                                        l2=1e-3)
    seen = []
    h = t.fit(x, y, epochs=2, batch_size=16, seed=5, validation_data=(vx, vy), on_epoch_end=seen.append)
    ref = sm.fit(x, y, epochs=2, batch_size=16, seed=5, validation_data=(vx, vy))
    assert seen == h and len(h) == len(ref) == 2
    for row, want in zip(h, ref):
        assert list(row) == list(want)
        for k, v in want.items():
            assert row[k] == pytest.approx(v, rel=1e-9), k
    assert_same_state(t.state_dict(), sm.state_dict(), "weights after fit")
    assert t._epoch_fn.experimental_get_tracing_count() == 1  # traced once, not once per epoch
    assert t._eval_fn.experimental_get_tracing_count() == 1
    short = t.fit(x, y, epochs=1, batch_size=50, evaluate_train=False)
    assert list(short[0]) == ["epoch", "loss", "diverged"]
    assert t._epoch_fn.experimental_get_tracing_count() == 1


def test_diverging_run_is_reported_not_raised(digits_like):
    x, y = digits_like
    t = km.Trainer(A.get("course_cnn"), (1, 8, 8), learning_rate=1e6, l2=1e-3)
    history = t.fit(x, y, epochs=5, batch_size=16)  # stops after the first non-finite epoch
    assert len(history) < 5 and history[-1]["diverged"] is True and not np.isfinite(history[-1]["loss"])
    assert not any(row["diverged"] for row in history[:-1])
    assert not np.isfinite(t.train_step(x[:4], y[:4]))  # NaN weights: a NaN objective, no exception


def test_predict_evaluate_and_state_dict(digits_like):
    x, y = digits_like
    spec = A.get("course_cnn")
    t = km.Trainer(spec, (1, 8, 8), seed=4)
    sm = scratch.build(spec, (1, 8, 8), seed=4).compile()
    assert_close(t.predict(x, batch_size=10), sm.predict(x), "float64", "predict")
    got, want = t.evaluate(x, y), sm.evaluate(x, y)
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-10) and got["accuracy"] == want["accuracy"]
    other = km.Trainer(spec, (1, 8, 8), seed=9)
    other.load_state_dict(t.state_dict())
    assert np.array_equal(other.predict(x), t.predict(x))
    assert t.layers == spec and t.input_shape == (1, 8, 8) and isinstance(t.model, keras.Sequential)


def test_trainer_input_errors(digits_like):
    x, y = digits_like
    t = km.Trainer(A.get("course_cnn"), (1, 8, 8))
    with pytest.raises(ValueError, match=r"channels-last \(NHWC\)"):
        t.predict(nhwc(x))
    with pytest.raises(ValueError, match=r"channels-last \(NHWC\)"):
        t.fit(nhwc(x), y, epochs=1, batch_size=16)
    with pytest.raises(TypeError, match="dtype float32"):
        t.train_step(x.astype(np.float32), y)
    with pytest.raises(ValueError, match="10 targets for 64 inputs"):
        t.train_step(x, y[:10])
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamw'.*'sgd', 'momentum'"):
        km.Trainer(A.get("course_cnn"), (1, 8, 8), optimizer="adamw")
    with pytest.raises(ValueError, match="init"):
        km.Trainer(A.get("course_cnn"), (1, 8, 8), init="xavier")
    with pytest.raises(ValueError, match="softmax"):
        km.Trainer((S.Flatten(), S.Dense(3, activation="relu")), (1, 8, 8))


def test_native_init_is_seeded_glorot():
    spec = A.get("course_cnn")
    a = km.Trainer(spec, (1, 8, 8), init="native", seed=3).state_dict()
    b = km.Trainer(spec, (1, 8, 8), init="native", seed=3).state_dict()
    s = scratch.build(spec, (1, 8, 8), seed=3).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.kernel"], s["0.kernel"])
    limit = np.sqrt(6 / (9 + 90))  # Glorot-uniform with Keras's conv fans
    assert np.abs(a["0.kernel"]).max() <= limit and not a["0.bias"].any()


def test_float32_trainer_tracks_scratch(digits_like):
    x, y = (v.astype(np.float32) if v.dtype == np.float64 else v for v in digits_like)
    spec = A.get("course_cnn")
    t = km.Trainer(spec, (1, 8, 8), learning_rate=0.05, l2=1e-3, dtype="float32", seed=1)
    sm = scratch.build(spec, (1, 8, 8), dtype="float32", seed=1).compile(learning_rate=0.05, l2=1e-3)
    for idx in batches(64, 16, 5):
        assert t.train_step(x[idx], y[idx]) == pytest.approx(sm.train_step(x[idx], y[idx]), rel=1e-5)
    for k, v in sm.state_dict().items():
        assert_close(t.state_dict()[k], v, "float32", f"float32 weights {k}", tol=(1e-4, 1e-5))


def test_many_trainers_do_not_warn_about_retracing(digits_like):
    x, y = digits_like
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        for seed in range(7):
            t = km.Trainer(A.get("course_ffnn"), (1, 8, 8), seed=seed)
            t.train_step(x[:8], y[:8])
            t.fit(x[:32], y[:32], epochs=1, batch_size=16)
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if "retracing" in r.getMessage()]


def test_save_and_load_keep_exact_layers(tmp_path):
    spec = (S.Conv2D(3, (2, 2), activation=LEAKY), LEAKY, S.Flatten(), S.Dense(2, activation="softmax"))
    m = km.build(spec, (1, 4, 4), l2=1e-3, seed=0)
    path = tmp_path / "model.keras"
    m.save(path)
    loaded = keras.saving.load_model(path)
    assert km.spec_of(loaded) == spec and km.l2_of(loaded) == 1e-3
    x = data((1, 4, 4), 2, "float64")
    assert np.array_equal(km.forward(loaded, x), km.forward(m, x))


def test_keras_models_never_imports_torch():
    root = pathlib.Path(km.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("torch", "torch_models") for n in names), f"{path.name}: {names}"
