"""The population's fast paths give the general stages' numbers: the fused first Conv2D +
relu + tiling MaxPool2D (ties routed to the first cell, the bias after pooling outside
training, exact zeros where gradients are not finite), the relu fused into its Dense, and
the member loss's column reductions. Each fast path is chosen only where it is exact."""
from types import SimpleNamespace

import numpy as np
import pytest

import scratch.population_layers as PL
from experiments import datasets
from scratch import Sequential, losses
from scratch import spec as S
from scratch.data import epoch_batches
from scratch.layers import ActivationOp, MaxPool2DOp
from scratch.population import Population, member_loss, row_max, row_sums
from scratch.population_convpool import SharedConvMaxPool, fuse

ETAS, LMBDAS = np.array([0.05, 0.1, 0.2]), np.array([0.0, 1e-3, 1e-2])
HEAD = (S.Flatten(), S.Dense(12, activation="relu"), S.Dense(10, activation="softmax"))

# (name, first layers on a (1, 9, 9) input, whether the fused stage applies)
NETWORKS = [
    ("relu, 2x2 windows cropping 7x7", (S.Conv2D(4, (3, 3), activation="relu"), S.MaxPool2D((2, 2))), True),
    ("no activation, 2x2 windows tiling 8x8", (S.Conv2D(4, (2, 2)), S.MaxPool2D((2, 2))), True),
    ("relu as its own layer", (S.Conv2D(4, (2, 2)), S.Activation("relu"), S.MaxPool2D((2, 2))), True),
    ("3x3 windows, same conv", (S.Conv2D(3, (3, 3), padding="same", activation="relu"), S.MaxPool2D((3, 3))), True),
    ("overlapping windows", (S.Conv2D(4, (2, 2), activation="relu"), S.MaxPool2D((2, 2), strides=(1, 1))), False),
    ("padded windows", (S.Conv2D(4, (3, 3), activation="relu"), S.MaxPool2D((2, 2), padding="same")), False),
    ("tanh before the pool", (S.Conv2D(4, (2, 2), activation="tanh"), S.MaxPool2D((2, 2))), False),
    ("leaky relu before the pool", (S.Conv2D(4, (2, 2), activation="leaky_relu"), S.MaxPool2D((2, 2))), False),
    ("average pooling", (S.Conv2D(4, (2, 2), activation="relu"), S.AvgPool2D((2, 2))), False),
]


def _stages(layers, shape=(1, 9, 9), size=3):
    ops = Sequential(layers, shape).ops
    return PL.stages(ops[:-1], SimpleNamespace(size=size))  # the softmax goes with the loss


def _unfused(monkeypatch):
    monkeypatch.setattr(PL, "fuse", lambda ops, i, keys: None)


@pytest.mark.parametrize("name, first, fused", NETWORKS, ids=[n for n, _, _ in NETWORKS])
def test_the_fused_stage_is_chosen_only_where_it_is_exact(name, first, fused):
    stage = _stages(first + HEAD)[0][0]
    assert isinstance(stage, SharedConvMaxPool) == fused
    dense = [s for s, _ in _stages(first + HEAD) if isinstance(s, PL._MemberDense)]
    assert [d.relu for d in dense] == [True, False]  # Dense(12, relu) carries its relu


@pytest.mark.parametrize("name, first, fused", NETWORKS, ids=[n for n, _, _ in NETWORKS])
def test_fused_and_general_networks_follow_their_cells(name, first, fused):
    data = datasets.synthetic(n=60, input_shape=(1, 9, 9), dtype=np.float64, seed=1)
    layers = first + HEAD
    population = Population(layers, data.input_shape, ETAS, LMBDAS, dtype=np.float64, seed=0)
    cells = []
    for eta, lmbda in zip(ETAS, LMBDAS):
        cells.append(Sequential(layers, data.input_shape, dtype=np.float64, seed=0)
                     .compile("categorical_crossentropy", "sgd", learning_rate=eta, l2=lmbda))
    x, y = data.x_train, cells[0].targets(data.y_train)
    for idx in epoch_batches(x.shape[0], 8, 0, 0):
        objectives = population.train_step(x[idx], y[idx])
        np.testing.assert_allclose(objectives, [m.train_step(x[idx], y[idx]) for m in cells], rtol=1e-12, atol=0)
    for i, m in enumerate(cells):
        for key, w in m.state_dict().items():
            np.testing.assert_allclose(population.params[key][i], w, rtol=1e-12, atol=1e-14, err_msg=key)
    ev = population.evaluate_batches(data.x_test, cells[0].targets(data.y_test), 1000)
    for i, m in enumerate(cells):
        ref = m.evaluate(data.x_test, data.y_test)
        assert ev["loss"][i] == pytest.approx(ref["loss"], rel=1e-12) and ev["accuracy"][i] == ref["accuracy"]


def _integer_case(dtype, relu, seed=0):
    """A network and state whose conv outputs are small integers: every sum is exact in any
    order, so ties are real ties, many of them between different input patches."""
    rng = np.random.default_rng(seed)
    layers = (S.Conv2D(4, (3, 3), activation="relu" if relu else None), S.MaxPool2D((2, 2))) + HEAD
    ref = Sequential(layers, (1, 8, 8), dtype=dtype, seed=0)
    state = ref.state_dict()
    state["0.kernel"] = rng.integers(-1, 2, state["0.kernel"].shape).astype(dtype)
    state["0.bias"] = np.array([-2, -1, 0, 1], dtype=dtype)
    x = rng.integers(0, 3, (24, 1, 8, 8)).astype(dtype)
    y = ref.targets(rng.integers(0, 10, 24))
    return layers, state, x, y


def _tied_windows(layers, state, x):
    """(ties between different patches among windows with a positive maximum, windows whose
    maximum is <= 0), counted on the cell model's pre-activation conv output."""
    ref = Sequential(layers, (1, 8, 8), dtype=x.dtype)
    ref.load_state_dict(state)
    z = ref.ops[0].forward(x, False)                      # (N, O, 6, 6), before the relu
    w = z.reshape(z.shape[0], z.shape[1], 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(*z.shape[:2], 3, 3, 4)
    best = w.max(axis=-1)
    ties = ((w == best[..., None]).sum(axis=-1) > 1) & (best > 0)
    return int(ties.sum()), int((best <= 0).sum())


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ties_route_to_the_first_cell_as_the_scratch_op_does(monkeypatch, dtype, relu):
    layers, state, x, y = _integer_case(dtype, relu)
    ties, dead = _tied_windows(layers, state, x)
    assert ties > 50 and (dead > 50 or not relu)  # the case exercises both
    fast = Population(layers, (1, 8, 8), ETAS, LMBDAS, dtype=dtype, state=state)
    assert isinstance(fast._ops[0][0], SharedConvMaxPool)
    _unfused(monkeypatch)
    general = Population(layers, (1, 8, 8), ETAS, LMBDAS, dtype=dtype, state=state)
    assert isinstance(general._ops[1 + relu][0], MaxPool2DOp)
    for step in range(3):  # the second and third steps start from the updated weights
        np.testing.assert_array_equal(fast.train_step(x, y), general.train_step(x, y))
        for key in fast.params:
            np.testing.assert_array_equal(fast.grads[key], general.grads[key], err_msg=f"step {step} {key}")
            np.testing.assert_array_equal(fast.params[key], general.params[key], err_msg=f"step {step} {key}")


def test_ties_made_by_rounding_the_bias_route_to_the_first_cell(monkeypatch):
    """float32: 2**24 + 0.25 and 2**24 + 0.5 both round to 2**24, so after the bias every cell
    of a window [0.25, 0.5; 0, 0] ties and the first one takes the gradient, as in the
    scratch op; routing on the conv output before its bias would pick the 0.5."""
    layers = (S.Conv2D(1, (1, 1), activation="relu"), S.MaxPool2D((2, 2)), S.Flatten(), S.Dense(10, activation="softmax"))
    state = Sequential(layers, (1, 4, 4), dtype=np.float32, seed=0).state_dict()
    state["0.kernel"][...], state["0.bias"][...] = 1, 2.0 ** 24
    x = np.tile(np.array([[0.25, 0.5], [0, 0]], np.float32), (2, 2))[None, None].repeat(6, axis=0)
    y = np.eye(10, dtype=np.float32)[np.arange(6)]
    fast = Population(layers, (1, 4, 4), ETAS, LMBDAS, dtype=np.float32, state=state)
    _unfused(monkeypatch)
    general = Population(layers, (1, 4, 4), ETAS, LMBDAS, dtype=np.float32, state=state)
    np.testing.assert_array_equal(fast.train_step(x, y), general.train_step(x, y))
    for key in fast.grads:
        np.testing.assert_array_equal(fast.grads[key], general.grads[key], err_msg=key)
    gk, gb = general.grads["0.kernel"][0].item(), general.grads["0.bias"][0].item()  # member 0: no L2 term
    assert gk == pytest.approx(0.25 * gb, rel=1e-5)


def _conv_stage(dtype, seed):
    rng = np.random.default_rng(seed)
    ops = Sequential((S.Conv2D(5, (3, 3), activation="relu"), S.MaxPool2D((2, 2))) + HEAD, (1, 10, 10)).ops
    stage, count = fuse(ops, 0, ("0.kernel", "0.bias"))
    assert count == 3
    params = {"0.kernel": rng.standard_normal((7, 5, 1, 3, 3)).astype(dtype),
              "0.bias": (10 * rng.standard_normal((7, 5))).astype(dtype)}
    return stage, ops, params, rng.standard_normal((53, 1, 10, 10)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_evaluation_adds_the_bias_after_pooling_with_the_same_bits(dtype):
    stage, _, params, x = _conv_stage(dtype, 1)
    np.testing.assert_array_equal(stage.forward(x, False, params), stage.forward(x, True, params))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_pooled_gradients_get_exact_zeros(monkeypatch, dtype):
    """inf in the gradient of a window that routes nowhere (max <= 0) or to one cell: the
    fused stage's zeros are the scratch ops' zeros (inf * 0 would be NaN)."""
    layers, state, x, _ = _integer_case(dtype, relu=True)
    params = {k: np.repeat(v[None], 3, axis=0) for k, v in state.items()}
    fast = _stages(layers, (1, 8, 8))[0][0]
    _unfused(monkeypatch)
    conv, act, pool = [s for s, _ in _stages(layers, (1, 8, 8))[:3]]
    assert isinstance(act, ActivationOp) and isinstance(pool, MaxPool2DOp)
    out = fast.forward(x, True, params)
    ref = pool.forward(act.forward(conv.forward(x, True, params), True), True)
    np.testing.assert_array_equal(out, ref)
    dout = np.ones_like(out)
    dead, live = np.argwhere(out == 0), np.argwhere(out > 0)
    dout[tuple(dead[0])] = dout[tuple(dead[5])] = np.inf
    dout[tuple(live[3])] = -np.inf
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    expected = {k: np.zeros_like(v) for k, v in params.items()}
    with np.errstate(invalid="ignore"):  # inf * 0, as in a training step
        fast.backward(dout, False, params, grads)
        conv.backward(act.backward(pool.backward(dout)), False, params, expected)
    for key in grads:
        np.testing.assert_array_equal(grads[key], expected[key], err_msg=key)
    assert np.isfinite(grads["0.bias"]).sum() == grads["0.bias"].size - 1  # only the live window's channel


def test_a_dense_relu_keeps_exact_zeros_where_its_gradient_is_not_finite():
    rng = np.random.default_rng(2)
    stage = PL._MemberDense(Sequential(HEAD[1:], (6,)).ops[0], ("0.kernel", "0.bias"), "members", relu=True)
    params = {"0.kernel": rng.standard_normal((2, 6, 12)), "0.bias": rng.standard_normal((2, 12))}
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    x = rng.standard_normal((2, 9, 6))
    y = stage.forward(x, True, params)
    dout = rng.standard_normal(y.shape)
    dout[y == 0] = np.inf  # every unit that relu switched off
    with np.errstate(invalid="ignore"):  # inf * 0, as in a training step
        dx = stage.backward(dout, True, params, grads)
    d = np.where(y > 0, dout, 0.0)
    np.testing.assert_array_equal(grads["0.bias"], d.sum(axis=1))
    np.testing.assert_array_equal(grads["0.kernel"], x.transpose(0, 2, 1) @ d)
    np.testing.assert_array_equal(dx, d @ params["0.kernel"].transpose(0, 2, 1))
    assert np.all(np.isfinite(dx))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 2, 7, 8, 9, 10, 16, 17, 31, 128, 129])
def test_row_reductions_are_numpys_bit_for_bit(dtype, k):
    rng = np.random.default_rng(k)
    x = (rng.standard_normal((3001, k)) * np.exp(rng.uniform(-12, 12, (3001, k)))).astype(dtype)
    np.testing.assert_array_equal(row_sums(x), x.sum(axis=1, keepdims=True))
    x[5, k // 2] = np.nan
    x[7, 0] = -np.inf
    np.testing.assert_array_equal(row_max(x), x.max(axis=1, keepdims=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_member_loss_is_each_members_loss_bit_for_bit(dtype):
    rng = np.random.default_rng(3)
    a = (5 * rng.standard_normal((4, 37, 10))).astype(dtype)
    y = np.eye(10, dtype=dtype)[rng.integers(0, 10, 37)]
    loss = losses.get("categorical_crossentropy")
    values, grad = member_loss(loss, a, y)
    assert member_loss(loss, a, y, need_grad=False)[1] is None
    for p in range(4):
        value, g = loss.value_and_grad(a[p], y)
        assert values[p] == dtype(value)
        np.testing.assert_array_equal(grad[p], g)
