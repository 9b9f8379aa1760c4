"""Optimizer variants of the trajectory matrix (centered RMSprop, RMSprop with momentum,
non-default betas, rhos, epsilons, accumulators): scratch against the native optimizers."""
import pytest

from experiments.parity import runner as R
from experiments.parity.testing import check, require


@pytest.mark.parametrize("framework", R.FRAMEWORKS)
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
    config = R._trainer("scratch", R.TRAJECTORY_ARCH, variant, flavor="torch").model.optimizer.get_config()
    assert all(config[k] == v for k, v in hyper.items()), config
