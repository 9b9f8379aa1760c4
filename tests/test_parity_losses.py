"""Loss and L2 parity: every loss, with and without L2, against torch's
``torch.nn.functional`` losses with an explicit penalty and Keras's loss functions with
``keras.regularizers.L2``: data loss, penalty, objective, the gradient with respect to the
logits (outputs for MSE), the output and every parameter gradient of the objective.
"""
import pytest

from experiments.parity import cases as C
from experiments.parity import losses as R
from experiments.parity.testing import check, require

CASES = C.loss_cases()


@pytest.mark.parametrize("framework", R.FRAMEWORKS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_loss_parity(case, framework):
    check(R.run_loss_case(case, (require(framework),)))


@pytest.mark.parametrize("dtype", C.DTYPES)
def test_torch_weight_decay_is_the_l2_penalty(dtype):
    """torch SGD(weight_decay=2*lambda) on kernels only takes scratch's L2 step (see docs/DESIGN.md, 'The objective and L2')."""
    require("torch")
    check(R.run_torch_decay(dtype))


def test_every_loss_runs_with_and_without_l2():
    from scratch.losses import LOSSES

    assert {(c.loss, bool(c.l2)) for c in CASES} == {(l, b) for l in LOSSES for b in (False, True)}
