"""Layer parity: every case of the layer matrix, scratch against torch and
Keras on the same inputs and weights: forward output, input gradient and every parameter
gradient under a random upstream gradient. float64 within 1e-10 relative; float32 within
the measured bound of experiments/parity/tolerances.py.

Also the comparison helper itself (part 1): shape, then dtype, then values, and a message
that names the case, the quantity, the errors and the index.
"""
import numpy as np
import pytest

from experiments.parity import cases as C
from experiments.parity import runner as R
from experiments.parity import tolerances
from experiments.parity.compare import assert_same, compare
from experiments.parity.testing import check, require
from scratch import spec as S

CASES = C.layer_cases()


@pytest.mark.parametrize("framework", R.FRAMEWORKS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layer_parity(case, framework):
    check(R.run_layer_case(case, (require(framework),)))


def test_matrix_covers_every_axis():
    """Every layer kind and activation; strides 1 and 2; both paddings; square and
    non-square kernels; 1 and 3 channels; batch 1 and 7; odd sizes; both dtypes."""
    kinds = {c.kind for c in CASES}
    assert kinds == set(C.LAYER_KINDS)
    assert {type(c.layers[0]) for c in CASES} == set(S.LAYER_KINDS)
    acts = {a.name for c in CASES for a in [c.layers[0] if isinstance(c.layers[0], S.Activation)
                                               else getattr(c.layers[0], "activation", None)] if a}
    assert acts == set(S.ACTIVATIONS)
    for kind in ("conv", "maxpool", "avgpool"):
        sub = [c.layers[0] for c in CASES if c.kind == kind]
        assert {l.strides for l in sub} >= {(1, 1), (2, 2)}, kind
        assert {l.padding for l in sub} == {"valid", "same"}, kind
        sizes = {getattr(l, "kernel_size", None) or l.pool_size for l in sub}
        assert any(h == w for h, w in sizes) and any(h != w for h, w in sizes), kind
        assert {c.input_shape[0] for c in CASES if c.kind == kind} >= {1, 3}, kind
    assert {c.batch for c in CASES} == {1, 7}
    assert any(c.input_shape[1] % 2 and c.input_shape[2] % 2 for c in CASES if len(c.input_shape) == 3)
    assert {c.dtype for c in CASES} == set(C.DTYPES)
    assert len({c.id for c in CASES}) == len(CASES)
    assert "conv-k2x3-s2-same-c3-b1-9x7-float64" in {c.id for c in CASES}


def test_compare_checks_shape_then_dtype_then_values():
    e = np.arange(6, dtype=np.float64).reshape(2, 3)
    r = compare(e, e.T, case="c", quantity="output", framework="torch")
    assert not r.passed and "shape mismatch" in r.problem
    r = compare(e, e.astype(np.float32), case="c", quantity="output", framework="torch")
    assert not r.passed and "dtype mismatch" in r.problem
    a = e.copy()
    a[1, 2] += 1e-3
    r = compare(e, a, case="conv-x", quantity="kernel gradient", framework="keras")
    assert not r.passed and r.index == (1, 2) and r.max_abs == pytest.approx(1e-3)
    msg = r.message()
    for part in ("conv-x", "kernel gradient", "keras", "max abs error 1.000e-03", "max rel error", "(1, 2)"):
        assert part in msg
    with pytest.raises(AssertionError, match="kernel gradient"):
        assert_same(e, a, case="conv-x", quantity="kernel gradient", framework="keras")
    assert compare(e, e + 1e-14, case="c", quantity="output", framework="torch").passed


def test_tolerances_are_keyed_by_dtype():
    assert tolerances.rtol_for("float64") == 1e-10
    assert tolerances.rtol_for(np.float32) == tolerances.RTOL["float32"]
    assert tolerances.rtol_for("float64", "param after step 3 (0.kernel)") == 1e-9
    with pytest.raises(ValueError, match="float16"):
        tolerances.rtol_for("float16")
