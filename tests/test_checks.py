"""scratch.checks: one message per bad value, the same from every framework; the trainer interface."""
import numpy as np
import pytest
import torch

import keras_models as km
import scratch
import torch_models as tm
from scratch import checks
from scratch import spec as S
from scratch.trainer import EpochTrainer, run_epochs

LAYERS = (S.Flatten(), S.Dense(3, activation="softmax"))
SHAPE = (1, 2, 2)


@pytest.mark.parametrize("dtype", ["float32", np.float64, np.dtype("float32")])
def test_check_dtype_accepts_float_spellings(dtype):
    assert checks.check_dtype(dtype) in checks.FLOAT_DTYPES
    assert checks.DTYPE_NAMES == ("float32", "float64")


@pytest.mark.parametrize("dtype", ["float16", "int64", "banana", torch.float16, object])
def test_check_dtype_rejects_with_one_message(dtype):
    with pytest.raises(TypeError, match=r"^dtype: .* is not supported; allowed: float32, float64$"):
        checks.check_dtype(dtype)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0", None])
def test_check_seed(seed):
    with pytest.raises(ValueError, match=r"^seed: expected a non-negative int, got "):
        checks.check_seed(seed)


def test_check_seed_allow_none():
    assert checks.check_seed(None, allow_none=True) is None
    assert checks.check_seed(np.int64(3)) == 3 and type(checks.check_seed(np.int64(3))) is int
    with pytest.raises(ValueError, match=r"^seed: expected None or a non-negative int, got -1$"):
        checks.check_seed(-1, allow_none=True)


@pytest.mark.parametrize("l2", [-1e-4, float("nan"), float("inf"), True, "0.1", None])
def test_check_l2(l2):
    with pytest.raises(ValueError, match=r"^l2: expected a finite number >= 0, got "):
        checks.check_l2(l2)


def test_check_l2_accepts_numpy_floats():
    assert checks.check_l2(np.float32(0.5)) == 0.5 and type(checks.check_l2(1)) is float


@pytest.mark.parametrize("shape", [(), (0, 2, 2), (1, 2), "abc", None])
def test_check_input_shape(shape):
    with pytest.raises(ValueError, match=r"^input_shape: expected "):
        checks.check_input_shape(shape)


def test_check_input_hints_channels_last():
    x = np.zeros((2, 2, 2, 1))
    with pytest.raises(ValueError, match="channels-last"):
        checks.check_input(x, (1, 2, 2), np.float64)
    with pytest.raises(TypeError, match=r"^x: dtype float64 does not match the trainer's float32"):
        checks.check_input(np.zeros((2, 1, 2, 2)), (1, 2, 2), np.float32, owner="trainer")


TRAINERS = {"scratch": scratch.Trainer, "keras": km.Trainer, "torch": tm.Trainer}


@pytest.mark.parametrize("framework", sorted(TRAINERS))
@pytest.mark.parametrize("kwargs, error, message", [
    ({"dtype": "float16"}, TypeError, "dtype: 'float16' is not supported; allowed: float32, float64"),
    ({"seed": -1}, ValueError, "seed: expected a non-negative int, got -1"),
    ({"l2": -1.0}, ValueError, "l2: expected a finite number >= 0, got -1.0"),
])
def test_every_trainer_gives_the_same_message(framework, kwargs, error, message):
    with pytest.raises(error) as exc:
        TRAINERS[framework](LAYERS, SHAPE, **kwargs)
    assert str(exc.value) == message


@pytest.mark.parametrize("framework", sorted(TRAINERS))
def test_trainers_implement_epoch_trainer(framework):
    t = TRAINERS[framework](LAYERS, SHAPE, learning_rate=0.1)
    engine = t.model if framework == "scratch" else t  # the scratch Trainer wraps a Sequential
    assert isinstance(engine, EpochTrainer)
    x = np.random.default_rng(0).random((6,) + SHAPE)
    history = t.fit(x, np.arange(6) % 3, epochs=2, batch_size=4)
    assert [row["epoch"] for row in history] == [1, 2]


def test_run_epochs_rejects_an_object_without_the_interface():
    class Legacy:
        def _train_step(self, x, y):
            return 0.0

    with pytest.raises(TypeError, match=r"Legacy does not implement scratch\.trainer\.EpochTrainer"):
        run_epochs(Legacy(), np.zeros((2, 1)), np.zeros((2, 1)), epochs=1, batch_size=1, seed=0, shuffle=False,
                   validation=None, progress=False, on_epoch_end=None)
