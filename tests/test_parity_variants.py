"""Optimizer variants of the trajectory matrix (centered RMSprop, RMSprop with momentum,
non-default betas, rhos, epsilons, accumulators): scratch against the native optimizers."""
import pytest

from experiments.parity import dropout as D
from experiments.parity import optimizers as R
from experiments.parity.data import TRAJECTORY_ARCH
from experiments.parity.results import FRAMEWORKS
from experiments.parity.testing import check, require


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("variant", list(R.VARIANTS))
def test_variant_trajectory(variant, framework):
    results = check(R.run_trajectory(variant, require(framework), steps=10))
    assert {int(r.quantity.split()[3]) for r in results} == set(range(1, 11))


def test_variants_are_in_the_whole_matrix():
    assert set(R.VARIANTS) <= set(R.TRAJECTORIES)


@pytest.mark.parametrize("variant", list(R.VARIANTS))
def test_variant_hyperparameters_reach_the_optimizer(variant):
    """A variant whose hyperparameters were dropped would compare the defaults twice."""
    base, hyper = R.VARIANTS[variant]
    config = R.trainer_for("scratch", TRAJECTORY_ARCH, variant, flavor="torch").model.optimizer.get_config()
    assert all(config[k] == v for k, v in hyper.items()), config


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dropout_in_training_mode_with_one_mask(dtype):
    results = check(D.run_dropout_training(dtype, frameworks=[require("torch"), require("keras")]))
    assert {r.quantity for r in results} == {"output", "input gradient"}


def test_a_wrong_training_dropout_scale_fails(monkeypatch):
    from scratch import layers

    forward = layers.DropoutOp.forward

    def unscaled(self, x, training):  # forgets the 1/(1-rate) of inverted dropout
        y = forward(self, x, training)
        if self._mask is not None:
            self._mask = (self._mask != 0).astype(x.dtype)
            return x * self._mask
        return y

    monkeypatch.setattr(layers.DropoutOp, "forward", unscaled)
    results = D.run_dropout_training("float64", frameworks=[require("torch")])
    assert not any(r.passed for r in results)
