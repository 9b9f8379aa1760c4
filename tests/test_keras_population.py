"""The Keras population: every member of the wide network follows its own serial Keras
Trainer step for step, and a member that diverges is frozen without touching the others."""
import numpy as np
import pytest
import torch  # noqa: F401  torch before TensorFlow in one process

from experiments import datasets
from keras_models import Trainer, to_scratch
from keras_models.population import Population
from scratch import architectures, spec
from scratch.data import as_targets, epoch_batches
from scratch.optimizers import OPTIMIZERS
from scratch.population import run_population

ETAS, LMBDAS = np.array([0.01, 0.01, 0.1, 0.1]), np.array([0.0, 1e-3, 0.0, 1e-3])


def _pair(data, optimizer, dtype, etas=ETAS, lmbdas=LMBDAS):
    layers = architectures.get("course_cnn")
    population = Population(layers, data.input_shape, etas, lmbdas, optimizer=optimizer, dtype=dtype)
    cells = [Trainer(layers, data.input_shape, optimizer=optimizer, learning_rate=e, l2=l, dtype=dtype)
             for e, l in zip(etas, lmbdas)]
    return population, cells


def _data(population, x, y):
    """The population's tensors and the cells' (checked canonical arrays) of the same data."""
    return population.tensors(x, y), (x, as_targets(y, population.output_shape[0], population.dtype))


def _steps(population, cells, data, steps, batch_size=20):
    (x, y), (cx, cy) = data
    pop, ref = [], []
    epoch = 0
    while sum(o.shape[1] for o in pop) < steps:
        batches = epoch_batches(int(x.shape[0]), batch_size, 0, epoch)
        pop.append(population.train_epoch(x, y, batches))
        ref.append(np.array([c.train_epoch(cx, cy, batches) for c in cells]))
        epoch += 1
    return np.concatenate(pop, 1)[:, :steps], np.concatenate(ref, 1)[:, :steps]


def _weights_close(population, cells, rtol):
    for i, cell in enumerate(cells):
        member = population.member_state(i)
        for key, w in to_scratch(cell.model).items():
            np.testing.assert_allclose(member[key], w, rtol=rtol, atol=rtol * np.abs(w).max(),
                                       err_msg=f"member {i} {key}")


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_float64_members_follow_their_keras_cells_for_100_steps(optimizer):
    data = datasets.digits(dtype=np.float64, limit=200)
    etas = ETAS / 10 if optimizer in ("rmsprop", "adam", "adagrad") else ETAS
    population, cells = _pair(data, optimizer, "float64", etas)
    both = _data(population, data.x_train, data.y_train)
    pop, ref = _steps(population, cells, both, 100)
    np.testing.assert_allclose(pop, ref, rtol=1e-12, atol=0)
    _weights_close(population, cells, 1e-12)
    if optimizer != "sgd":  # the evaluation is the same for every optimizer: traced once here
        return
    ev = population.evaluate_batches(*both[0], 1000)
    for i, c in enumerate(cells):
        r = c.evaluate_batches(*both[1], 1000)
        assert ev["loss"][i] == pytest.approx(r["loss"], rel=1e-12) and ev["accuracy"][i] == r["accuracy"]


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_float32_members_stay_within_the_stated_bound(optimizer):
    """float32: the bound the README states, 5e-4 relative on the objectives and 1e-4 of
    the tensor's scale on the weights over 100 steps (measured at most 1.1e-4, where
    momentum drives an objective down to 0.027, and 7.7e-6): the wide products sum in
    other orders than a member's own."""
    data = datasets.digits(dtype=np.float32, limit=200)
    etas = ETAS / 10 if optimizer == "adam" else ETAS
    population, cells = _pair(data, optimizer, "float32", etas)
    pop, ref = _steps(population, cells, _data(population, data.x_train, data.y_train), 100)
    np.testing.assert_allclose(pop, ref, rtol=5e-4, atol=0)
    _weights_close(population, cells, 1e-4)


def test_a_diverging_member_is_frozen_and_the_others_go_on():
    data = datasets.digits(dtype=np.float64, limit=200)
    etas, lmbdas = np.array([0.05, 1e4, 0.1]), np.array([1e-3, 1.0, 0.0])
    population, cells = _pair(data, "sgd", "float64", etas, lmbdas)
    x, y = population.tensors(data.x_train, data.y_train)
    def finite(member, row):  # nothing non-finite is ever written into any member
        assert all(np.isfinite(w).all() for w in population.params.values())

    histories = run_population(population, x, y, epochs=3, batch_size=20, seed=0, on_epoch_end=finite)
    serial = [c.fit(data.x_train, data.y_train, epochs=3, batch_size=20, seed=0) for c in cells]
    assert [len(h) for h in histories] == [len(h) for h in serial] == [3, 1, 3]
    assert histories[1][-1]["diverged"] and serial[1][-1]["diverged"]
    assert np.isnan(histories[1][-1]["train_loss"])
    assert population.size == 2 and population.etas.tolist() == [0.05, 0.1]
    for pop_h, cell_h in ((histories[0], serial[0]), (histories[2], serial[2])):
        for a, b in zip(pop_h, cell_h):
            for k in ("loss", "train_loss", "train_accuracy", "test_loss") if "test_loss" in b else ("loss",):
                assert a[k] == pytest.approx(b[k], rel=1e-12)
    _weights_close(population, [cells[0], cells[2]], 1e-12)


def test_bad_members_and_dropout_are_refused():
    layers = architectures.get("course_cnn")
    with pytest.raises(ValueError, match="lmbdas: 1 values for 2 etas"):
        Population(layers, (1, 8, 8), [0.1, 0.2], [0.0])
    dropout = layers[:3] + (spec.Dropout(0.5),) + layers[3:]
    with pytest.raises(ValueError, match="train networks with Dropout cell by cell"):
        Population(dropout, (1, 8, 8), [0.1], [0.0])


_S = spec
NETWORKS = {
    # a grouped convolution after the first one, "same" padding, a stride, average pooling
    "two convs": ((_S.Conv2D(3, 3, padding="same", activation="relu"), _S.MaxPool2D(2),
                   _S.Conv2D(4, 3, strides=2, padding="same", activation="tanh"), _S.AvgPool2D(2, padding="same"),
                   _S.Flatten(), _S.Dense(5, activation="leaky_relu"), _S.Dense(3, activation="softmax")),
                  "categorical_crossentropy"),
    # a softmax over each member's channels, pooling before the first parametric layer
    "channel softmax": ((_S.MaxPool2D(2, strides=1), _S.Conv2D(2, 2, activation="softmax"), _S.Conv2D(3, 2),
                         _S.Activation("softmax"), _S.Flatten(), _S.Dense(3, activation="softmax")),
                        "categorical_crossentropy"),
    # Dense on the shared flat data; sigmoid output with binary cross-entropy
    "dense only": ((_S.Flatten(), _S.Dense(6, activation="sigmoid"), _S.Dense(1, activation="sigmoid")),
                   "binary_crossentropy"),
    "mse": ((_S.Conv2D(2, 3, activation="leaky_relu"), _S.Flatten(), _S.Dense(3)), "mse"),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_every_kind_of_layer_follows_its_serial_cell(name):
    """The wide network's layers (first and grouped convolutions, pooling, activations,
    member softmax, flatten, EinsumDense) against the member network, float64, 30 steps."""
    layers, loss = NETWORKS[name]
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 1, 6, 6))
    k = 1 if loss == "binary_crossentropy" else 3
    y = rng.integers(0, 2, size=(40, 1)).astype(float) if k == 1 else np.eye(k)[rng.integers(0, k, 40)]
    etas, lmbdas = [0.05, 0.2, 0.1], [0.0, 1e-2, 1e-3]
    population = Population(layers, (1, 6, 6), etas, lmbdas, loss=loss, optimizer="momentum", dtype="float64")
    cells = [Trainer(layers, (1, 6, 6), loss=loss, optimizer="momentum", learning_rate=e, l2=l, dtype="float64")
             for e, l in zip(etas, lmbdas)]
    both = _data(population, x, y)
    pop, ref = _steps(population, cells, both, 30, batch_size=10)
    np.testing.assert_allclose(pop, ref, rtol=1e-12, atol=0)
    _weights_close(population, cells, 1e-12)
    ev = population.evaluate_batches(*both[0], 16)
    for i, c in enumerate(cells):
        r = c.evaluate_batches(*both[1], 16)
        assert ev["loss"][i] == pytest.approx(r["loss"], rel=1e-12) and ev["accuracy"][i] == r["accuracy"]


def test_a_network_without_weights_is_refused():
    with pytest.raises(ValueError, match="a population needs a Conv2D or Dense layer"):
        Population((spec.Flatten(), spec.Activation("softmax")), (1, 2, 5), [0.1], [0.0])


def test_evaluation_in_cache_sized_chunks_equals_the_trainers_chunks_of_1000():
    from keras_models.population import EVAL_CHUNK

    data = datasets.digits(dtype=np.float64)
    population, cells = _pair(data, "sgd", "float64")
    (x, y), cell_data = _data(population, data.x_train, data.y_train)
    assert x.shape[0] > 4 * EVAL_CHUNK  # several chunks, a short last one
    ev = population.evaluate_batches(x, y, 1000)
    for i, c in enumerate(cells):
        r = c.evaluate_batches(*cell_data, 1000)
        assert ev["loss"][i] == pytest.approx(r["loss"], rel=1e-12) and ev["accuracy"][i] == r["accuracy"]


def test_window_columns_taken_once_give_the_numbers_of_columns_taken_per_batch(monkeypatch):
    """course_cnn starts with a PooledConv: its data become window columns, (N, 2*2 pooling
    offsets, 3*3 windows, 3*3*1 patch + 1); over the budget they stay NHWC and each batch's
    columns are taken in the step, with the same numbers to the last bit."""
    from keras_models import population as KP

    data = datasets.digits(dtype=np.float64, limit=200)
    results = []
    for budget, shape in ((KP.COLUMNS_BUDGET, (160, 4, 9, 10)), (0, (160, 8, 8, 1))):
        monkeypatch.setattr(KP, "COLUMNS_BUDGET", budget)
        population, _ = _pair(data, "momentum", "float64")
        x, y = population.tensors(data.x_train, data.y_train)
        assert tuple(x.shape) == shape
        objectives = np.concatenate([population.train_epoch(x, y, epoch_batches(160, 20, 0, e)) for e in range(3)], 1)
        results.append((objectives, population.evaluate_batches(x, y, 1000), population.params))
    (o1, e1, p1), (o2, e2, p2) = results
    np.testing.assert_array_equal(o1, o2)
    for k in e1:
        np.testing.assert_array_equal(e1[k], e2[k])
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])


def test_pooled_conv_routes_tied_maxima_as_conv2d_and_max_pooling2d_do():
    """Integer data and an all-ones kernel: many windows hold equal maxima from different
    patches, so a gradient sent to another cell than MaxPool2D's would change dW by whole
    units (tested: it fails when the ties go to the last cell)."""
    import keras
    import tensorflow as tf

    from keras_models.population_layers import PooledConv

    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(-1, 2, size=(6, 7, 7, 2)).astype(np.float64))
    kernel = tf.ones((3, 3, 2, 4), tf.float64)
    bias = tf.constant([0.0, -1.0, 1.0, 0.5], tf.float64)
    r = tf.constant(rng.normal(size=(6, 2, 2, 4)))
    for activation in ("relu", "linear"):
        conv = keras.layers.Conv2D(4, 3, activation=activation, dtype="float64")
        pool = keras.layers.MaxPooling2D(2, dtype="float64")
        ref = keras.Sequential([keras.Input((7, 7, 2), dtype="float64"), conv, pool])
        fused = keras.Sequential([keras.Input((7, 7, 2), dtype="float64"), PooledConv(conv, pool, dtype="float64")])
        results = []
        for model in (ref, fused):
            with tf.GradientTape() as tape:
                tape.watch([kernel, bias])
                out, _ = model.stateless_call([kernel, bias], [], x)
                total = tf.reduce_sum(out * r)
            results.append([out.numpy()] + [g.numpy() for g in tape.gradient(total, [kernel, bias])])
        z = tf.nn.conv2d(x, kernel, 1, "VALID").numpy()[:, :4, :4].reshape(6, 2, 2, 2, 2, 4)  # (n, a, i, b, j, o)
        assert np.sum(z[:, :, 0, :, 0] == z[:, :, 0, :, 1]) > 10  # ties between cells of a window
        for a, b in zip(*results):  # equal up to the order of the gradient's sums
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_the_compiled_sgd_epoch_gives_the_numbers_of_numpy_steps():
    """Plain SGD is applied inside the compiled epoch; the NumPy rule after each compiled
    batch gives the same float32 numbers to the last bit, a diverging member included."""
    data = datasets.digits(dtype=np.float32, limit=200)
    etas, lmbdas = np.array([0.05, 1e4, 0.1]), np.array([1e-3, 1.0, 0.0])
    runs = []
    for fused in (True, False):
        population, _ = _pair(data, "sgd", "float32", etas, lmbdas)
        assert population.fused_sgd
        population.fused_sgd = fused
        population._build()
        x, y = population.tensors(data.x_train, data.y_train)
        histories = run_population(population, x, y, epochs=3, batch_size=20, seed=0)
        runs.append(([[row["loss"] for row in h] for h in histories], population.params))
    (loss1, params1), (loss2, params2) = runs
    assert [len(h) for h in loss1] == [3, 1, 3] and not np.isfinite(loss1[1][0])  # diverged in epoch 1
    for a, b in zip(loss1, loss2):
        np.testing.assert_array_equal(a, b)
    for k in params1:
        np.testing.assert_array_equal(params1[k], params2[k])
    momentum, _ = _pair(data, "momentum", "float32")
    assert not momentum.fused_sgd


def test_members_that_leave_keep_their_slots_until_a_quarter_have_left():
    """One member of five diverges: it stays in the wide network, frozen and hidden, and
    the others still follow their cells; a second one leaving rebuilds it for three."""
    data = datasets.digits(dtype=np.float64, limit=200)
    etas, lmbdas = np.array([0.05, 1e4, 0.1, 0.02, 0.01]), np.array([1e-3, 1.0, 0.0, 1e-2, 0.0])
    population, cells = _pair(data, "sgd", "float64", etas, lmbdas)
    (x, y), (cx, cy) = _data(population, data.x_train, data.y_train)
    histories = run_population(population, x, y, epochs=2, batch_size=20, seed=0)
    assert [len(h) for h in histories] == [2, 1, 2, 2, 2] and histories[1][-1]["diverged"]
    assert population.size == 4 and population._in.size == 5  # kept in its slot
    assert population.etas.tolist() == [0.05, 0.1, 0.02, 0.01] and not population.frozen.any()
    live = [cells[i] for i in (0, 2, 3, 4)]
    for c in live:
        c.fit(data.x_train, data.y_train, epochs=2, batch_size=20, seed=0)
    _weights_close(population, live, 1e-12)
    population.keep(np.array([True, False, True, True]))  # 2 of 5 slots left: rebuilt for 3
    assert population.size == 3 and population._in.size == 3
    live = [live[i] for i in (0, 2, 3)]
    batches = epoch_batches(int(x.shape[0]), 20, 0, 2)
    np.testing.assert_allclose(population.train_epoch(x, y, batches),
                               [c.train_epoch(cx, cy, batches) for c in live], rtol=1e-12, atol=0)
    _weights_close(population, live, 1e-12)
    ev = population.evaluate_batches(x, y, 1000)
    for i, c in enumerate(live):
        assert ev["loss"][i] == pytest.approx(c.evaluate_batches(cx, cy, 1000)["loss"], rel=1e-12)
