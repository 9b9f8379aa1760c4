"""where_error_lies and infer_layout."""
import numpy as np
import pytest

from experiments.diagnose import infer_layout, where_error_lies

RNG = np.random.default_rng(0)
E = RNG.normal(size=(3, 2, 6, 6))


def off(where):
    g = E.copy()
    g[where] += 1.0
    return g


@pytest.mark.parametrize("where,words", [
    ((1,), "sample 1"), ((slice(None), 1), "channel 1"),
    ((slice(None), slice(None), slice(None), 5), "the last of the 6 columns"),
    ((slice(None), slice(None), 0), "the first of the 6 rows"),
    ((slice(None), slice(None), slice(1, None, 2)), "every 2-th of the rows starting at 1"),
])
def test_where_error_lies_names_the_region(where, words):
    assert words in where_error_lies(off(where), E, 1e-10)


def test_where_error_lies_one_class_and_spread():
    e = RNG.normal(size=(5, 4))
    g = e.copy()
    g[:, 2] *= 3
    assert "class 2" in where_error_lies(g, e, 1e-10)
    assert "spread" in where_error_lies(E + 1, E, 1e-10)
    assert where_error_lies(E, E, 1e-10) == "no entry is off"


@pytest.mark.parametrize("raw,kind,want", [
    (E.transpose(0, 2, 3, 1), "activation-image", ["n h w c"]),
    (E.transpose(0, 2, 3, 1).reshape(3, -1), "activation-image", ["n (h w c)"]),
    (E.reshape(3, -1), "activation-image", ["n (c h w)"]),
])
def test_infer_layout_finds_the_activation_layout(raw, kind, want):
    assert infer_layout(raw, E, kind=kind) == want


def test_infer_layout_kernels():
    k = RNG.normal(size=(4, 1, 3, 2))
    assert infer_layout(k.transpose(2, 3, 1, 0).reshape(6, 4), k, kind="conv-kernel") == ["(kh kw) out"]
    k2 = RNG.normal(size=(4, 2, 3, 3))
    assert infer_layout(k2.transpose(2, 3, 1, 0), k2, kind="conv-kernel") == ["kh kw in out"]
    d = RNG.normal(size=(5, 3))
    assert infer_layout(d.T, d, kind="dense-kernel") == ["out in"]
    assert infer_layout(d.T + 1, d, kind="dense-kernel") == []
    with pytest.raises(ValueError, match="kind: unknown"):
        infer_layout(d, d, kind="bogus")
