"""check.network names mistakes that only show when layers are chained: a backward through
weights already updated, the first layer never updated, a layer dividing by the batch again."""
import pytest

from experiments import check
from scratch import spec as S
from students.network import SGDDense

LR = 0.1


def _report(bugs=(None, None)):
    layers = [SGDDense(5, 4, LR, seed=0, bug=bugs[0]), SGDDense(4, 3, LR, seed=1, bug=bugs[1])]
    entries = [check.UserLayer(S.Dense(d.W.shape[1], activation="sigmoid"), d.forward, d.backward,
                               params={"kernel": (lambda d=d: d.W, "in out"), "bias": (lambda d=d: d.b, "out")},
                               grads_from_update=LR) for d in layers]
    return check.network(entries, input_shape=(5,))


def test_correct_network_passes_with_no_diagnosis():
    report = _report()
    assert report.passed, report
    assert report.diagnoses == []


@pytest.mark.parametrize("bugs, want", [
    ((None, "updated"), "backward-uses-updated-weights"),
    (("updated", "updated"), "backward-uses-updated-weights"),
    (("frozen", None), "first-layer-not-updated"),
    ((None, "batch"), "batch-scaled-twice"),
])
def test_network_mistake_is_named_first(bugs, want):
    report = _report(bugs)
    assert not report.passed
    assert report.diagnoses, report
    first = report.diagnoses[0]
    assert first.id == want, report
    assert first.quantity.startswith("layer ") and first.text.startswith(f"your {first.quantity} equals")
    assert f"[{want}]" in str(report)
