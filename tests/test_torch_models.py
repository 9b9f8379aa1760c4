"""torch_models against the scratch engine: build, transfer, spec_of, Trainer.

The strict checks run in float64 (see docs/DESIGN.md, 'Tolerances'): forward outputs of every layer,
the input gradient and every parameter gradient under a random upstream gradient equal
scratch's to about 1e-10 relative. The edge cases (asymmetric TensorFlow "same" padding
for convolution and both poolings, stride 2, odd sizes, non-square kernels) make this
the proof that the torch padding modules and the average-pool exclusion are right.
"""
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import scratch
import torch_models as tm
from scratch import architectures as A
from scratch import spec as S
from scratch.data import epoch_batches

# Tolerances keyed by dtype: float64 is the strict parity check; float32 is "as users run
# it" (torch.testing's float32 anchors are rtol 1.3e-6, atol 1e-5).
TOL = {np.dtype(np.float64): dict(rtol=1e-10, atol=1e-13), np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6)}


def assert_close(actual, expected, what, **tol):
    """Shape, dtype, then values; a failure names the quantity, the max abs/rel error and where."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    tol = tol or TOL[expected.dtype]
    diff = np.abs(actual.astype(np.float64) - expected)
    bad = diff > tol["atol"] + tol["rtol"] * np.abs(expected)
    if bad.any():
        rel = diff / np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
        where = np.unravel_index(np.argmax(np.where(bad, diff, -1)), diff.shape)
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} entries differ; max abs error {diff.max():.3e}, "
            f"max rel error {rel[bad].max():.3e}; first worst at {tuple(int(i) for i in where)}: "
            f"{actual[where]!r} vs {expected[where]!r}"
        )


def scratch_layout_grads(model):
    """The .grad of every Conv2d/Linear parameter, keyed and laid out like scratch's gradients()."""
    grads = {}
    for e in tm.entries(model):
        if isinstance(e.module, (nn.Conv2d, nn.Linear)):
            g = e.module.weight.grad.numpy()
            grads[f"{e.index}.kernel"] = g.T if isinstance(e.module, nn.Linear) else g
            grads[f"{e.index}.bias"] = e.module.bias.grad.numpy()
    return grads


def pair(layers, input_shape, dtype=np.float64, seed=0):
    """(scratch model, torch model holding the same weights)."""
    ref = scratch.build(layers, input_shape, dtype=dtype, seed=seed)
    model = tm.build(layers, input_shape, dtype=dtype)
    tm.from_scratch(model, ref.state_dict())
    return ref, model.eval()


def check_parity(layers, input_shape, *, batch=2, dtype=np.float64, seed=0):
    """Every layer's output, dX and every parameter gradient: torch vs scratch."""
    ref, model = pair(layers, input_shape, dtype, seed)
    rng = np.random.default_rng(seed + 100)
    x = rng.standard_normal((batch,) + tuple(input_shape)).astype(dtype)
    want = ref.forward_layers(x)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    got = tm.forward_layers(model, xt)
    assert len(got) == len(want) == len(layers)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g.detach().numpy(), w, f"layer {i} ({type(layers[i]).__name__}) output")
    assert tuple(got[-1].shape[1:]) == ref.output_shape
    up = rng.standard_normal(want[-1].shape).astype(dtype)  # random: a sum or ones can hide a transpose
    dx = ref.backward(up)
    got[-1].backward(torch.from_numpy(up))
    assert_close(xt.grad.numpy(), dx, "dX")
    ref_grads, grads = ref.gradients(), scratch_layout_grads(model)
    assert list(grads) == list(ref_grads)
    for k in ref_grads:
        assert_close(grads[k], ref_grads[k], f"layer {k.split('.')[0]} d {k.split('.')[1]}")
    return model


def arch_shape(name):
    return (1, 28, 28) if name == "lenet" else (1, 8, 8)


# Edge cases. Comments give TensorFlow's "same" padding (before, after) per axis.
EDGE = {
    # 7x9: conv (2,3) same -> H (0,1), W (1,1): asymmetric -> ZeroPad2d; max pool 2/2 same
    # -> (0,1),(0,1): ConstantPad2d(-inf); avg pool 3/2 same on 4x5 -> (0,1),(1,1): AvgPool2dSame.
    "asymmetric_same": ((
        S.Conv2D(3, (2, 3), padding="same", activation=S.Activation("leaky_relu", 0.1)),
        S.MaxPool2D(2, strides=2, padding="same"),
        S.AvgPool2D(3, strides=2, padding="same"),
        S.Flatten(),
        S.Dense(5, activation="tanh"),
        S.Dense(4, activation="softmax"),
    ), (1, 7, 9)),
    # 3 channels, 9x9: conv 3/2 same -> (1,1) symmetric on the Conv2d; max pool 3/1 same
    # -> (1,1): MaxPool2d(padding=1); avg pool 3/2 same on 5x5 -> (1,1): count_include_pad=False.
    "symmetric_same_rgb": ((
        S.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
        S.MaxPool2D(3, strides=1, padding="same"),
        S.AvgPool2D(3, strides=2, padding="same"),
        S.Conv2D(2, (2, 3), strides=(1, 2), activation="sigmoid"),
        S.Dropout(0.5),
        S.Flatten(),
        S.Dense(3),
        S.Activation("softmax"),
    ), (3, 9, 9)),
    # stride-2 convolution with asymmetric padding in both axes (8 -> 4, total 1), valid
    # pools with strides other than the window, standalone activations.
    "stride2_valid_pools": ((
        S.Conv2D(2, (3, 2), strides=2, padding="same"),
        S.Activation("leaky_relu"),
        S.MaxPool2D((2, 1), strides=(1, 2)),
        S.AvgPool2D((2, 2), strides=1),
        S.Flatten(),
        S.Dense(6, activation="identity"),
        S.Activation("sigmoid"),
    ), (2, 8, 7)),
    "flat_input": ((S.Dense(7, activation=S.Activation("leaky_relu", 0.1)), S.Dense(3, activation="tanh")), (11,)),
}


# --------------------------------------------------------------------------- build
@pytest.mark.parametrize("name", A.names())
@pytest.mark.parametrize("batch", [1, 3])
def test_registered_architectures_match_scratch(name, batch):
    model = check_parity(A.get(name), arch_shape(name), batch=batch)
    assert [n for n, m in model.named_children() if isinstance(m, (nn.Conv2d, nn.Linear))] == \
        sorted({k.split(".")[0] for k in scratch.build(A.get(name), arch_shape(name)).state_dict()}, key=int)


@pytest.mark.parametrize("case", sorted(EDGE))
def test_edge_cases_match_scratch(case):
    layers, shape = EDGE[case]
    check_parity(layers, shape, batch=3)
    check_parity(layers, shape, batch=1, seed=3)


def test_edge_cases_cover_every_padding_module():
    kinds = set()
    for layers, shape in EDGE.values():
        for name, m in tm.build(layers, shape).named_children():
            if isinstance(m, nn.ZeroPad2d):
                kinds.add("conv asymmetric pad")
            elif isinstance(m, nn.ConstantPad2d) and m.value == float("-inf"):
                kinds.add("max asymmetric pad")
            elif isinstance(m, tm.AvgPool2dSame):
                kinds.add("avg asymmetric")
            elif isinstance(m, nn.Conv2d) and m.padding != (0, 0):
                kinds.add("conv symmetric")
            elif isinstance(m, nn.MaxPool2d) and m.padding != (0, 0):
                kinds.add("max symmetric")
            elif isinstance(m, nn.AvgPool2d) and m.padding != (0, 0):
                assert m.count_include_pad is False
                kinds.add("avg symmetric")
    assert kinds == {"conv asymmetric pad", "max asymmetric pad", "avg asymmetric", "conv symmetric",
                     "max symmetric", "avg symmetric"}


def test_names_line_up_with_scratch_keys():
    model = tm.build(EDGE["asymmetric_same"][0], (1, 7, 9))
    assert list(dict(model.named_children())) == ["0_pad", "0", "0_leaky_relu", "1_pad", "1", "2", "3", "4",
                                                  "4_tanh", "5", "5_softmax"]
    avg = model.get_submodule("2")  # by spec index; model[2] is positional (the fused LeakyReLU)
    assert isinstance(avg, tm.AvgPool2dSame) and avg.padding == (1, 1, 0, 1) and avg.kernel_size == (3, 3)
    assert model.get_submodule("0_leaky_relu").negative_slope == 0.1
    assert set(model.state_dict()) == {"0.weight", "0.bias", "4.weight", "4.bias", "5.weight", "5.bias"}
    assert tm.build([S.Activation("leaky_relu")], (3,))[0].negative_slope == 0.3  # the spec's, not torch's 0.01


@pytest.mark.parametrize("case", ["asymmetric_same", "symmetric_same_rgb"])
def test_float32_forward_close_to_scratch(case):
    layers, shape = EDGE[case]
    ref, model = pair(layers, shape, np.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x = np.random.default_rng(1).standard_normal((4,) + shape).astype(np.float32)
    out = model(torch.from_numpy(x)).detach().numpy()
    assert_close(out, ref.forward(x), "float32 output")


def test_build_shape_errors_name_the_layer():
    with pytest.raises(scratch.layers.ShapeError, match=r"layer 2 \(Conv2D\).*cannot follow a Flatten"):
        tm.build([S.Flatten(), S.Dense(3), S.Conv2D(2)], (1, 4, 4))
    with pytest.raises(scratch.layers.ShapeError, match=r"layer 0 \(Dense\).*add a Flatten"):
        tm.build([S.Dense(3)], (1, 4, 4))
    with pytest.raises(scratch.layers.ShapeError, match=r"layer 0 \(Conv2D\): window \(5, 5\) is larger"):
        tm.build([S.Conv2D(2, 5)], (1, 4, 4))
    with pytest.raises(TypeError, match="allowed: float32, float64"):
        tm.build([S.Flatten()], (4,), dtype=torch.float16)


# --------------------------------------------------------------------------- transfer
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", A.names())
def test_round_trips_are_bit_exact(name, dtype):
    shape = arch_shape(name)
    state = scratch.build(A.get(name), shape, dtype=dtype, seed=5).state_dict()
    model = tm.build(A.get(name), shape, dtype=dtype)
    back = tm.to_scratch(tm.from_scratch(model, state))
    again = tm.to_scratch(tm.from_scratch(tm.build(A.get(name), shape, dtype=dtype),
                                          scratch.build(A.get(name), shape, dtype=dtype, seed=5)))
    assert all(np.array_equal(again[k], state[k]) for k in state)  # a scratch model is accepted too
    assert list(back) == list(state)
    for k in state:
        assert back[k].dtype == state[k].dtype and back[k].flags.c_contiguous
        assert np.array_equal(back[k], state[k]), k
    # torch -> scratch -> torch: torch's own initialisation survives bit for bit.
    native = tm.build(A.get(name), shape, dtype=dtype)
    fresh = tm.from_scratch(tm.build(A.get(name), shape, dtype=dtype), tm.to_scratch(native))
    for k, v in native.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_linear_weight_is_transposed_conv_kernel_is_not():
    model = tm.build(A.get("course_cnn"), (1, 8, 8))
    state = tm.to_scratch(model)
    assert state["0.kernel"].shape == (10, 1, 3, 3) and state["3.kernel"].shape == (90, 50)
    assert np.array_equal(state["3.kernel"], model.get_submodule("3").weight.detach().numpy().T)
    assert tm.TRANSPOSED == (nn.Linear,)


def _course_state():
    return scratch.build(A.get("course_cnn"), (1, 8, 8), seed=1).state_dict()


def _assert_untouched(model, before):
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} was changed by a failed transfer"


def test_transfer_shape_error_names_layer_key_and_both_shapes():
    model = tm.build(A.get("course_cnn"), (1, 8, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = _course_state()
    state["3.kernel"] = np.ascontiguousarray(state["3.kernel"].T)  # torch's layout by mistake
    with pytest.raises(ValueError, match=r"layer 3 .*Linear.*3\.kernel: shape \(50, 90\) given, the model "
                                         r"expects \(90, 50\).*torch weight is \(50, 90\), transposed"):
        tm.from_scratch(model, state)
    _assert_untouched(model, before)  # 0.kernel and 0.bias came first and were fine: nothing copied


def test_transfer_key_and_dtype_errors():
    model = tm.build(A.get("course_cnn"), (1, 8, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = _course_state()
    missing = {k: v for k, v in state.items() if k != "4.bias"}
    with pytest.raises(KeyError, match=r"missing keys \['4.bias'\], unexpected keys \[\]"):
        tm.from_scratch(model, missing)
    extra = dict(state, **{"1.kernel": np.zeros(3)})
    with pytest.raises(KeyError, match=r"unexpected keys \['1.kernel'\].*layer 1 is a MaxPool2d"):
        tm.from_scratch(model, extra)
    ffnn = scratch.build(A.get("course_ffnn"), (1, 8, 8)).state_dict()
    with pytest.raises(KeyError, match=r"missing keys \['0.kernel', '0.bias', '3.kernel', '3.bias', "
                                       r"'4.kernel', '4.bias'\], unexpected keys \['1.kernel'.*layer 2 is a Flatten"):
        tm.from_scratch(model, ffnn)
    as32 = {k: v.astype(np.float32) for k, v in state.items()}
    with pytest.raises(TypeError, match=r"layer 0 .*0\.kernel: dtype float32 does not match the model's float64"):
        tm.from_scratch(model, as32)
    with pytest.raises(TypeError, match=r"expected a dict of arrays \(scratch layout\), got list"):
        tm.from_scratch(model, list(state.values()))
    with pytest.raises(TypeError, match="expected a NumPy array"):
        tm.from_scratch(model, dict(state, **{"0.bias": torch.zeros(10, dtype=torch.float64)}))
    _assert_untouched(model, before)


def test_transfer_rejects_modules_scratch_cannot_hold():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(72, 3))
    with pytest.raises(ValueError, match=r"layer 1 \(child '1': BatchNorm2d\).*no scratch counterpart"):
        tm.to_scratch(model)
    with pytest.raises(ValueError, match=r"layer 1 \(child '1': Linear\): has no bias"):
        tm.to_scratch(nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False)))


# --------------------------------------------------------------------------- spec_of
def course_model_by_hand():
    return nn.Sequential(nn.Conv2d(1, 10, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(90, 50),
                         nn.ReLU(), nn.Linear(50, 10), nn.Softmax(dim=1)).double()


def test_spec_of_hand_written_course_model():
    user = course_model_by_hand()
    spec = tm.spec_of(user, (1, 8, 8))
    assert spec == (S.Conv2D(10, (3, 3)), S.Activation("relu"), S.MaxPool2D((2, 2)), S.Flatten(), S.Dense(50),
                    S.Activation("relu"), S.Dense(10), S.Activation("softmax"))
    # One spec entry per child: scratch's keys are the user's state_dict keys.
    state = tm.to_scratch(user)
    assert sorted(state) == sorted(k.replace("weight", "kernel") for k in user.state_dict())
    ref = scratch.build(spec, (1, 8, 8))
    ref.load_state_dict(state)
    x = np.random.default_rng(2).random((5, 1, 8, 8))
    out = user(torch.from_numpy(x)).detach().numpy()
    assert_close(out, ref.forward(x), "hand-written model vs scratch")
    # ... and it is the course CNN: the same weights under course_cnn's indices give the same outputs.
    course = scratch.build(A.get("course_cnn"), (1, 8, 8))
    course.load_state_dict({k.replace("4.", "3.").replace("6.", "4."): v for k, v in state.items()})
    assert_close(out, course.forward(x), "hand-written model vs course_cnn")
    # The Linear needs the shape spec_of infers.
    with pytest.raises(ValueError, match=r"layer 4 \(child '4': Linear\): in_features=90 .* 60 features"):
        tm.spec_of(user, (1, 6, 8))


@pytest.mark.parametrize("name", A.names())
def test_spec_of_build_round_trip(name):
    assert tm.spec_of(tm.build(A.get(name), arch_shape(name)), arch_shape(name)) == A.get(name)


@pytest.mark.parametrize("case", sorted(EDGE))
def test_spec_of_edge_cases_round_trip(case):
    layers, shape = EDGE[case]
    assert tm.spec_of(tm.build(layers, shape), shape) == layers


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
def test_spec_of_torch_padding_forms():
    # torch's padding="same" (stride 1, even kernel: the extra cell at the bottom, as TensorFlow)
    user = nn.Sequential(nn.Conv2d(2, 3, (2, 3), padding="same"), nn.Conv2d(3, 3, 3, stride=2, padding=1),
                         nn.AvgPool2d(3, 1, padding=1, count_include_pad=False), nn.MaxPool2d(3, 2, padding=1))
    spec = tm.spec_of(user, (2, 9, 9))
    assert spec == (S.Conv2D(3, (2, 3), padding="same"), S.Conv2D(3, 3, 2, "same"),
                    S.AvgPool2D(3, 1, "same"), S.MaxPool2D(3, 2, "same"))
    ref = scratch.build(spec, (2, 9, 9))
    ref.load_state_dict(tm.to_scratch(user.double()))
    x = np.random.default_rng(3).standard_normal((2, 2, 9, 9))
    assert_close(user(torch.from_numpy(x)).detach().numpy(), ref.forward(x), "torch padding forms vs scratch")


@pytest.mark.parametrize("module, shape, match", [
    (nn.BatchNorm2d(1), (1, 4, 4), r"layer 0 \(child '0': BatchNorm2d\): BatchNorm2d is not supported; "
                                   r"supported modules: Conv2d"),
    (nn.Conv2d(1, 2, 3, dilation=2), (1, 8, 8), "dilation=.*not supported"),
    (nn.Conv2d(1, 2, 3, groups=1, bias=False), (1, 8, 8), "bias=False is not supported"),
    (nn.Conv2d(2, 2, 3, groups=2), (2, 8, 8), "groups=2"),
    (nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), (1, 8, 8), "padding_mode='reflect'"),
    (nn.Conv2d(1, 2, 3, stride=2, padding=1), (1, 8, 8), r"neither 0 \('valid'\) nor TensorFlow's 'same' "
                                                         r"for an input of 8x8.*which is \(0, 1, 0, 1\)"),
    (nn.Conv2d(3, 2, 3), (1, 8, 8), "in_channels=3 but the inferred input is"),
    (nn.MaxPool2d(2, ceil_mode=True), (1, 8, 8), "ceil_mode=True"),
    (nn.AvgPool2d(3, 1, padding=1), (1, 8, 8), "count_include_pad=True"),
    (nn.Softmax(dim=0), (4,), r"Softmax\(dim=0\)"),
    (nn.ZeroPad2d(1), (1, 4, 4), "ZeroPad2d is not supported"),
    (nn.Sequential(nn.ReLU()), (4,), "Sequential is not supported"),
])
def test_spec_of_unsupported_names_module_and_what_is_supported(module, shape, match):
    with pytest.raises(ValueError, match=match):
        tm.spec_of(nn.Sequential(module), shape)


def test_spec_of_rejects_misplaced_children():
    with pytest.raises(ValueError, match="fused activation child '0_relu' may follow a Conv2d or Linear"):
        tm.spec_of(nn.Sequential(OrderedDict([("0", nn.Flatten()), ("0_relu", nn.ReLU())])), (4,))
    with pytest.raises(ValueError, match="numbered 0, 1"):
        tm.spec_of(nn.Sequential(OrderedDict([("1", nn.Flatten())])), (4,))
    with pytest.raises(TypeError, match="expected a torch.nn.Sequential"):
        tm.spec_of(nn.Linear(3, 2), (3,))


# --------------------------------------------------------------------------- Trainer
def _data(n=120, seed=0, shape=(1, 8, 8), classes=10, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.random((n,) + shape).astype(dtype), rng.integers(0, classes, n)


def test_trainer_sgd_l2_matches_scratch_for_20_steps():
    x, y = _data(200)
    layers = A.get("course_cnn")
    ref = scratch.build(layers, (1, 8, 8), seed=0).compile("categorical_crossentropy", "sgd", learning_rate=0.1,
                                                           l2=1e-3, flavor="torch")
    trainer = tm.Trainer(layers, (1, 8, 8), optimizer="sgd", learning_rate=0.1, l2=1e-3)
    assert trainer.state_dict().keys() == ref.state_dict().keys()
    for k, v in ref.state_dict().items():  # init="scratch": the same start, bit for bit
        assert np.array_equal(trainer.state_dict()[k], v)
    batches = epoch_batches(200, 10, 0, 0)
    assert len(batches) == 20
    for idx in batches:
        want = ref.train_step(x[idx], y[idx])
        got = trainer.train_step(x[idx], y[idx])
        np.testing.assert_allclose(got, want, rtol=1e-12)
    for k, v in ref.state_dict().items():
        assert_close(trainer.state_dict()[k], v, f"{k} after 20 SGD steps", rtol=1e-9, atol=0)


@pytest.mark.parametrize("optimizer", tm.OPTIMIZERS)
@pytest.mark.parametrize("loss", ["categorical_crossentropy", "binary_crossentropy", "mse"])
def test_trainer_optimizers_and_losses_match_scratch_torch_flavour(optimizer, loss):
    out = {"categorical_crossentropy": S.Dense(4, activation="softmax"),
           "binary_crossentropy": S.Dense(1, activation="sigmoid"), "mse": S.Dense(4)}[loss]
    layers = (S.Flatten(), S.Dense(8, activation="tanh"), out)
    x, y = _data(40, shape=(1, 3, 3), classes=out.units if out.units > 1 else 2)
    ref = scratch.build(layers, (1, 3, 3), seed=2).compile(loss, optimizer, learning_rate=0.05, l2=1e-3,
                                                           flavor="torch")
    trainer = tm.Trainer(layers, (1, 3, 3), loss=loss, optimizer=optimizer, learning_rate=0.05, l2=1e-3, seed=2)
    for idx in epoch_batches(40, 4, 1, 0):
        np.testing.assert_allclose(trainer.train_step(x[idx], y[idx]), ref.train_step(x[idx], y[idx]), rtol=1e-10)
    for k, v in ref.state_dict().items():
        assert_close(trainer.state_dict()[k], v, f"{k} ({optimizer}, {loss})", rtol=1e-9, atol=1e-15)


def test_fit_history_equals_scratch():
    x, y = _data(150)
    vx, vy = _data(50, seed=1)
    layers = A.get("course_cnn")
    ref = scratch.build(layers, (1, 8, 8), seed=4).compile(optimizer="momentum", learning_rate=0.05, l2=1e-4,
                                                           flavor="torch")
    trainer = tm.Trainer(layers, (1, 8, 8), optimizer="momentum", learning_rate=0.05, l2=1e-4, seed=4)
    want = ref.fit(x, y, epochs=2, batch_size=16, seed=7, validation_data=(vx, vy))
    rows = []
    got = trainer.fit(x, y, epochs=2, batch_size=16, seed=7, validation_data=(vx, vy), on_epoch_end=rows.append)
    assert rows == got and len(got) == 2
    quick = tm.Trainer(layers, (1, 8, 8), seed=4).fit(x, y, epochs=1, batch_size=50, evaluate_train=False)
    assert list(quick[0]) == ["epoch", "loss", "diverged"]
    for g, w in zip(got, want):
        assert list(g) == list(w)
        for k in w:
            if isinstance(w[k], float):
                np.testing.assert_allclose(g[k], w[k], rtol=1e-9, err_msg=f"epoch {w['epoch']} {k}")
            else:
                assert g[k] == w[k], k


def test_diverging_run_is_reported_not_raised():
    x, y = _data(40, shape=(6,), classes=3)
    layers = (S.Dense(3),)
    ref = scratch.build(layers, (6,)).compile("mse", "sgd", learning_rate=1e4, flavor="torch")
    trainer = tm.Trainer(layers, (6,), loss="mse", learning_rate=1e4)
    want = ref.fit(x, y, epochs=5, batch_size=4)
    got = trainer.fit(x, y, epochs=5, batch_size=4)
    assert got[-1]["diverged"] and not np.isfinite(got[-1]["loss"])
    assert [r["diverged"] for r in got] == [r["diverged"] for r in want]
    assert trainer.predict(x).shape == (40, 3)  # NaN outputs, no exception


def test_trainer_api_and_errors():
    x, y = _data(30, dtype=np.float32)
    trainer = tm.Trainer(A.get("course_cnn"), (1, 8, 8), dtype=torch.float32, learning_rate=0.1)
    assert trainer.model.get_submodule("0").weight.dtype == torch.float32 and trainer.input_shape == (1, 8, 8)
    assert trainer.layers == A.get("course_cnn")
    onehot = np.eye(10, dtype=np.float32)[y]
    assert trainer.evaluate(x, y) == trainer.evaluate(x, onehot)
    p = trainer.predict(x, batch_size=7)
    assert isinstance(p, np.ndarray) and p.shape == (30, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    state = trainer.state_dict()
    trainer.train_step(x, y)
    trainer.load_state_dict(state)
    assert all(np.array_equal(trainer.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(TypeError, match="dtype float64 does not match the trainer's float32"):
        trainer.train_step(x.astype(np.float64), y)
    with pytest.raises(ValueError, match="channels-last"):
        trainer.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(30, 8, 8, 1))
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamw'; expected one of \('sgd', 'momentum'"):
        tm.Trainer(A.get("course_cnn"), (1, 8, 8), optimizer="adamw")
    with pytest.raises(ValueError, match=r"sgd: invalid hyperparameter\(s\) \['rho'\]"):
        tm.Trainer(A.get("course_cnn"), (1, 8, 8), rho=0.9)
    with pytest.raises(ValueError, match="needs the model to end in a softmax activation"):
        tm.Trainer((S.Flatten(), S.Dense(3)), (1, 2, 2))
    with pytest.raises(ValueError, match="needs the model to end in a sigmoid"):
        tm.Trainer(A.get("course_ffnn"), (1, 8, 8), loss="binary_crossentropy")


def test_native_init_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = tm.Trainer(A.get("course_cnn"), (1, 8, 8), init="native", seed=1).state_dict()
    assert torch.equal(torch.rand(3), expected_next)
    b = tm.Trainer(A.get("course_cnn"), (1, 8, 8), init="native", seed=1).state_dict()
    c = tm.Trainer(A.get("course_cnn"), (1, 8, 8), init="scratch", seed=1).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.kernel"], c["0.kernel"])
    with pytest.raises(ValueError, match="init: expected one of"):
        tm.Trainer(A.get("course_cnn"), (1, 8, 8), init="glorot")


def test_dropout_fit_is_reproducible_and_predict_deterministic():
    layers = (S.Flatten(), S.Dense(16, activation="relu"), S.Dropout(0.5), S.Dense(3, activation="softmax"))
    x, y = _data(40, shape=(2, 3, 3), classes=3)
    runs = [tm.Trainer(layers, (2, 3, 3), learning_rate=0.1) for _ in range(2)]
    hist = [t.fit(x, y, epochs=2, batch_size=8, seed=3) for t in runs]
    assert hist[0] == hist[1]
    runs[0].model.train()  # predict switches to eval mode whatever the caller left
    np.testing.assert_array_equal(runs[0].predict(x), runs[1].predict(x))
    assert not runs[0].model.training


def test_import_leaves_tensorflow_out_and_worker_threads():
    code = (
        "import sys, torch_models, torch\n"
        "bad = [m for m in ('tensorflow', 'keras', 'keras_models') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "torch_models.configure_worker_threads(); torch_models.configure_worker_threads()\n"
        "print(torch.get_num_threads(), torch.get_num_interop_threads())\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1", "1"]
