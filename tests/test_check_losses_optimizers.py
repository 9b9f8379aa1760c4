"""check.loss and check.optimizer on course-style code."""
import numpy as np
import pytest

from experiments import check
from students import training as T


def _failing(report):
    return {r["quantity"] for r in report.rows if not r["passed"]}


def test_cross_entropy_mean_passes_on_logits_of_1000():
    report = check.loss("categorical_crossentropy", value=T.cross_entropy_mean, grad=T.cross_entropy_grad)
    assert report.passed, report
    assert any("+-1000" in c for c in report.cases)
    assert {r["quantity"] for r in report.rows} == {"loss", "loss gradient"}


def test_naive_cross_entropy_is_non_finite_at_1000():
    report = check.loss("categorical_crossentropy", value=T.cross_entropy_naive)
    assert not report.passed and [d.id for d in report.diagnoses] == ["non-finite"]
    assert all(r["passed"] for r in report.rows if r["case"] == "batch 1")


def test_mean_or_sum_over_the_batch_is_declared():
    kw = dict(value=T.mse_sum, grad=T.mse_sum_grad, wrt="outputs")
    assert check.loss("mse", reduction="sum", **kw).passed
    wrong = check.loss("mse", reduction="mean", **kw)
    # batch 1: sum == mean; batch 5: five times too large
    assert {r["case"] for r in wrong.rows if not r["passed"]} == {"batch 5"}


def test_samples_in_columns_layout():
    report = check.loss("categorical_crossentropy", layout="f n", value=lambda z, y: T.cross_entropy_mean(z.T, y.T),
                        grad=lambda z, y: T.cross_entropy_grad(z.T, y.T).T)
    assert report.passed, report


def test_cross_entropy_on_outputs():
    report = check.loss("categorical_crossentropy", wrt="outputs",
                        value=lambda p, y: float(-(y * np.log(p)).sum() / len(p)), grad=lambda p, y: -y / p / len(p))
    assert report.passed, report


@pytest.mark.parametrize("kw, word", [(dict(wrt="logits"), "wrt"), (dict(reduction="avg"), "reduction"),
                                      (dict(layout="n x"), "unknown axis 'x'"), (dict(layout="f"), "batch axis")])
def test_loss_usage_errors(kw, word):
    with pytest.raises(check.CheckUsageError, match=word):
        check.loss("mse", value=T.mse_sum, **{"wrt": "outputs", **kw})


def test_loss_that_returns_an_array_fails_with_shape():
    report = check.loss("mse", wrt="outputs", value=lambda a, y: (a - y) ** 2)
    assert not report.passed and report.diagnoses[0].id == "shape"


# --------------------------------------------------------------------------- optimizers
def _summary(report, fw):
    return next(s for s in report.summary if s.startswith(fw))


def test_course_momentum_matches_keras_and_torch():
    report = check.optimizer("momentum", learning_rate=0.05, hyper={"momentum": 0.9},
                             scheduler=lambda: T.Momentum(0.05, 0.9))
    assert report.passed, report
    assert "MATCHES" in _summary(report, "keras") and "MATCHES" in _summary(report, "torch")
    assert len(report.rows) == 2 * 2 * 25 and all(r["rtol"] == 1e-9 for r in report.rows)


def test_rmsprop_epsilon_inside_is_keras_outside_is_torch():
    kw = dict(learning_rate=0.01, hyper={"rho": 0.9, "epsilon": 1e-3})
    inside = check.optimizer("rmsprop", scheduler=lambda: T.RMSprop(0.01, 0.9, 1e-3), **kw)
    assert inside.passed and "MATCHES" in _summary(inside, "keras") and "departs at step 1" in _summary(inside, "torch")
    outside = check.optimizer("rmsprop", scheduler=lambda: T.RMSprop(0.01, 0.9, 1e-3, outside=True), **kw)
    assert outside.passed and "MATCHES" in _summary(outside, "torch")


def test_adam_step_in_place_and_a_missing_bias_correction():
    ok = check.optimizer("adam", learning_rate=0.01, step=T.AdamStep(0.01).step)
    assert ok.passed and "MATCHES" in _summary(ok, "torch")
    bad = check.optimizer("adam", learning_rate=0.01, step=T.AdamStep(0.01, no_correction=True).step)
    assert not bad.passed
    assert "departs at step 1" in _summary(bad, "torch") and "departs at step 1" in _summary(bad, "keras")
    assert "rows shown" in str(bad)


def test_optimizer_that_raises_or_returns_nothing():
    class Broken:
        def update_change(self, g):
            return None
    report = check.optimizer("sgd", learning_rate=0.1, scheduler=Broken)
    assert not report.passed and report.diagnoses[0].id == "shape"

    def boom(params, grads):
        raise RuntimeError("no")
    report = check.optimizer("sgd", learning_rate=0.1, step=boom)
    assert not report.passed and report.diagnoses[0].id == "raised" and "RuntimeError: no" in str(report)


@pytest.mark.parametrize("kw, word", [(dict(name="lbfgs"), "unknown 'lbfgs'"), (dict(hyper={"rho": 2.0}), "rho"),
                                      (dict(step=lambda p, g: None), "exactly one")])
def test_optimizer_usage_errors(kw, word):
    args = dict(name="rmsprop", learning_rate=0.1, scheduler=lambda: T.RMSprop(0.1, 0.9))
    args.update(kw)
    with pytest.raises(check.CheckUsageError, match=word):
        check.optimizer(args.pop("name"), **args)
