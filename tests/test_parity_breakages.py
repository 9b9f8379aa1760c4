"""The suite proves it can fail: each planted bug of
experiments/parity/breakages.py (a monkeypatch of the scratch engine) must be reported by
the parity checker with the right layer and quantity, and its probe must pass without it.
"""
import pytest

from experiments.parity import breakages as B
from experiments.parity.testing import require

PAIRS = [(b, fw) for b in B.BREAKAGES for fw in b.frameworks]


@pytest.mark.parametrize("breakage,framework", PAIRS, ids=[f"{b.name}-{fw}" for b, fw in PAIRS])
def test_breakage_is_reported(breakage, framework):
    B.check(breakage, require(framework))


def test_at_least_ten_documented_breakages():
    assert len(B.BREAKAGES) >= 10 and len(set(B.NAMES)) == len(B.NAMES)
    for b in B.BREAKAGES:
        assert b.name in B.__doc__, f"{b.name} is not in the module's table"


def test_patches_are_undone():
    import scratch.layers as L

    before = (L.Conv2DOp.forward, L.FlattenOp.backward, L.conv_output_size)
    for b in B.BREAKAGES:
        with b.patch():
            pass
    assert (L.Conv2DOp.forward, L.FlattenOp.backward, L.conv_output_size) == before
