"""The NumPy population: every member follows its own cell's trajectory, and a member that
diverges is frozen without touching the others."""
import numpy as np
import pytest

from experiments import datasets
from scratch import Sequential, architectures
from scratch.data import epoch_batches
from scratch.optimizers import OPTIMIZERS, make
from scratch.population import Population, run_population

ETAS, LMBDAS = (0.01, 0.1), (0.0, 1e-3)


@pytest.fixture(scope="module")
def digits64():
    return datasets.digits(dtype=np.float64, limit=300)


def _grid():
    e, l = np.meshgrid(ETAS, LMBDAS, indexing="ij")
    return e.ravel(), l.ravel()


def _cells(arch, data, optimizer, flavor, dtype, etas, lmbdas):
    models = []
    for eta, lmbda in zip(etas, lmbdas):
        m = Sequential(architectures.get(arch), data.input_shape, dtype=dtype, seed=0)
        m.compile("categorical_crossentropy", optimizer, learning_rate=eta, l2=lmbda, flavor=flavor)
        models.append(m)
    return models


def _steps(population, models, data, steps, batch_size):
    """Run ``steps`` optimizer steps on both; the per-step objectives, (P, steps) each."""
    x, y = data.x_train, models[0].targets(data.y_train)
    pop_obj, cell_obj = np.empty((population.size, steps)), np.empty((population.size, steps))
    done, epoch = 0, 0
    while done < steps:
        for idx in epoch_batches(x.shape[0], batch_size, 0, epoch):
            if done == steps:
                break
            pop_obj[:, done] = population.train_step(x[idx], y[idx])
            cell_obj[:, done] = [m.train_step(x[idx], y[idx]) for m in models]
            done += 1
        epoch += 1
    return pop_obj, cell_obj


@pytest.mark.parametrize("flavor", ["keras", "torch"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_float64_members_follow_their_cells_for_100_steps(digits64, optimizer, flavor):
    etas, lmbdas = _grid()
    if optimizer in ("rmsprop", "adam", "adagrad"):
        etas = etas / 10  # adaptive rules take larger steps; keep the grid stable, not chaotic
    population = Population(architectures.get("course_cnn"), digits64.input_shape, etas, lmbdas,
                            optimizer=optimizer, flavor=flavor, dtype=np.float64, seed=0)
    models = _cells("course_cnn", digits64, optimizer, flavor, np.float64, etas, lmbdas)
    pop_obj, cell_obj = _steps(population, models, digits64, 100, 24)
    np.testing.assert_allclose(pop_obj, cell_obj, rtol=1e-12, atol=0)
    for i, m in enumerate(models):
        for key, w in m.state_dict().items():
            np.testing.assert_allclose(population.params[key][i], w, rtol=1e-12,
                                       atol=1e-12 * np.abs(w).max(), err_msg=f"member {i} {key}")


@pytest.mark.parametrize("arch", ["lenet", "course_ffnn"])
def test_float64_other_layouts_follow_their_cells(arch):
    """lenet: a second Conv2D (the batched member convolution) and "same" average pooling;
    course_ffnn: a Flatten of the data, so the first Dense takes the shared input."""
    shape = (1, 28, 28) if arch == "lenet" else (1, 8, 8)
    data = datasets.synthetic(n=60, input_shape=shape, dtype=np.float64, seed=0)
    etas, lmbdas = _grid()
    population = Population(architectures.get(arch), data.input_shape, etas, lmbdas, dtype=np.float64, seed=0)
    models = _cells(arch, data, "sgd", "keras", np.float64, etas, lmbdas)
    pop_obj, cell_obj = _steps(population, models, data, 12, 8)
    np.testing.assert_allclose(pop_obj, cell_obj, rtol=1e-12, atol=0)
    ev = population.evaluate_batches(data.x_test, models[0].targets(data.y_test), 1000)
    for i, m in enumerate(models):
        ref = m.evaluate(data.x_test, data.y_test)
        assert ev["loss"][i] == pytest.approx(ref["loss"], rel=1e-12)
        assert ev["accuracy"][i] == ref["accuracy"]


def test_float32_members_stay_within_the_stated_bound(digits64):
    """float32: the bound the README states for a population against its cells."""
    data = datasets.digits(dtype=np.float32, limit=300)
    etas, lmbdas = _grid()
    population = Population(architectures.get("course_cnn"), data.input_shape, etas, lmbdas,
                            dtype=np.float32, seed=0)
    models = _cells("course_cnn", data, "sgd", "keras", np.float32, etas, lmbdas)
    pop_obj, cell_obj = _steps(population, models, data, 100, 24)
    np.testing.assert_allclose(pop_obj, cell_obj, rtol=1e-5, atol=0)  # measured: 2.5e-7
    for i, m in enumerate(models):  # measured: 3.8e-5 of the tensor's scale
        for key, w in m.state_dict().items():
            np.testing.assert_allclose(population.params[key][i], w, rtol=1e-3, atol=1e-3 * np.abs(w).max())


def test_a_diverging_member_is_frozen_and_the_others_go_on(digits64):
    etas, lmbdas = np.array([0.05, 1e3, 0.1]), np.array([1e-3, 1.0, 0.0])
    population = Population(architectures.get("course_cnn"), digits64.input_shape, etas, lmbdas,
                            dtype=np.float64, seed=0)
    x = digits64.x_train
    y = Sequential(architectures.get("course_cnn"), digits64.input_shape).targets(digits64.y_train)
    def on_epoch_end(member, row):
        for w in population.params.values():  # nothing non-finite is ever written into any member
            assert np.all(np.isfinite(w))

    histories = run_population(population, x, y, epochs=4, batch_size=24, seed=0, on_epoch_end=on_epoch_end)
    models = _cells("course_cnn", digits64, "sgd", "keras", np.float64, etas, lmbdas)
    serial = [m.fit(x, y, epochs=4, batch_size=24, seed=0) for m in models]
    assert [len(h) for h in histories] == [len(h) for h in serial] == [4, 1, 4]
    assert histories[1][-1]["diverged"] and serial[1][-1]["diverged"]
    assert not np.isfinite(histories[1][-1]["loss"]) and np.isnan(histories[1][-1]["train_loss"])
    assert population.size == 2 and population.etas.tolist() == [0.05, 0.1]  # it left the population
    for pop_h, cell_h in ((histories[0], serial[0]), (histories[2], serial[2])):
        for a, b in zip(pop_h, cell_h):
            for k in ("loss", "train_loss", "train_accuracy"):
                assert a[k] == pytest.approx(b[k], rel=1e-12)
    np.testing.assert_allclose(population.params["3.kernel"][1], models[2].state_dict()["3.kernel"], rtol=1e-12,
                               atol=1e-14)


def test_per_member_learning_rates_select_and_errors():
    opt = make("adam", [0.1, 0.2, 0.3], flavor="torch")
    p = {"w": np.ones((3, 2))}
    opt.step(p, {"w": np.ones((3, 2))})
    opt.select(np.array([True, False, True]))
    assert opt.learning_rate.tolist() == [0.1, 0.3] and opt._state["w"]["m"].shape == (2, 2)
    with pytest.raises(ValueError, match="learning_rate must be a number or a non-empty 1-D list"):
        make("sgd", [0.1, -1.0])
    with pytest.raises(TypeError, match="one learning rate, not one per member"):
        make("sgd", 0.1).select([True])
    with pytest.raises(ValueError, match="lmbdas: 1 values for 2 etas"):
        Population(architectures.get("course_cnn"), (1, 8, 8), [0.1, 0.2], [0.0])
    with pytest.raises(ValueError, match=r"etas: every value must be a finite number > 0"):
        Population(architectures.get("course_cnn"), (1, 8, 8), [0.0], [0.0])
