"""check.layer on student-style layers: correct variants pass, broken ones fail at the right
quantity; bad declarations give one-line usage errors, bad output a failed report."""
import numpy as np
import pytest

from experiments import check
from experiments.check import cases as C
from experiments.check.layouts import Converter, LayoutError
from scratch import spec as S
from students import conv as SC
from students import layers as SL


def _failing(report):
    return {r["quantity"] for r in report.rows if not r["passed"]}


def _loop_conv(bug=None, **kw):
    conv = SC.LoopConv(bug=bug)
    return check.layer(S.Conv2D(2, 3, activation="relu"), input_shape=(1, 6, 6), forward=conv.forward,
                       backward=conv.backward, input_layout="h w", output_layout="h w c",
                       params={"kernel": (lambda: conv.K, "(kh kw) out")}, grads={"kernel": lambda: conv.dK}, **kw)


def test_loop_conv_passes_with_rows_for_both_frameworks_and_both_batches():
    report = _loop_conv()
    assert report.passed, report
    assert {r["framework"] for r in report.rows} == {"torch", "keras"}
    assert {r["quantity"] for r in report.rows} == {"output", "input gradient", "kernel gradient"}
    assert [c.split()[1] for c in report.cases] == ["1", "3"]
    assert "seed 0" in str(report) and "bias: not in params" in str(report)


@pytest.mark.parametrize("bug, wrong", [
    ("flipped", {"output", "input gradient", "kernel gradient"}),
    ("no-relu-derivative", {"input gradient", "kernel gradient"}),
    ("relu-derivative-at-zero", {"input gradient"}),  # only exact zeros reveal it
])
def test_broken_loop_conv_fails_at_the_right_quantity(bug, wrong):
    report = _loop_conv(bug)
    assert not report.passed
    assert _failing(report) == wrong
    text = str(report)
    assert "FAILED" in text and "WRONG" in text


def test_scipy_conv_updating_in_place_checked_through_the_update():
    layer = SC.ScipyConv()
    lr = 0.1
    kw = dict(input_shape=(2, 5, 6), forward=layer.forward, backward=lambda g: layer.backward(g, lr),
              input_layout="n h w c", output_layout="n h w c",
              params={"kernel": (lambda: layer.W, "kh kw in out"), "bias": (lambda: layer.b, "out")},
              grads_from_update=lr)
    report = check.layer(S.Conv2D(3, 2), **kw)
    assert report.passed, report
    assert {"kernel gradient", "bias gradient"} <= {r["quantity"] for r in report.rows}
    assert "input gradient" not in {r["quantity"] for r in report.rows}
    assert "backward returned None" in str(report)
    layer.bug = "bias-mean"
    assert _failing(check.layer(S.Conv2D(3, 2), **kw)) == {"bias gradient"}


def test_max_pool_ties_must_go_to_the_first_maximum():
    def run(bug):
        pool = SL.LoopMaxPool(bug)
        return check.layer(S.MaxPool2D(2), input_shape=(2, 4, 6), forward=pool.forward, backward=pool.backward,
                           input_layout="h w c", output_layout="h w c")
    assert run(None).passed
    broken = run("ties")
    assert _failing(broken) == {"input gradient"}
    assert any("ties" in c for c in broken.cases)


def test_avg_pool_flatten_and_dense_with_their_layouts():
    pool = SL.LoopAvgPool()
    assert check.layer(S.AvgPool2D(2), input_shape=(3, 4, 4), forward=pool.forward, backward=pool.backward,
                       input_layout="h w c", output_layout="h w c").passed
    flat = SL.FlattenHWC()
    kw = dict(input_shape=(2, 3, 4), forward=flat.forward, backward=flat.backward, input_layout="h w c")
    assert check.layer(S.Flatten(), output_layout="(h w c)", **kw).passed
    assert _failing(check.layer(S.Flatten(), output_layout="f", **kw)) == {"output", "input gradient"}
    d = SL.Dense(5, 3)
    kw = dict(input_shape=(5,), forward=d.forward, backward=d.backward,
              params={"kernel": (lambda: d.W, "out in"), "bias": (lambda: d.b, "out")},
              grads={"kernel": lambda: d.dW, "bias": lambda: d.db})
    assert check.layer(S.Dense(3, activation="sigmoid"), **kw).passed
    d.bug = "bias-mean"
    assert _failing(check.layer(S.Dense(3, activation="sigmoid"), **kw)) == {"bias gradient"}


def test_pre_activation_gradient_is_declared():
    d = SL.DensePre(4, 3)
    kw = dict(input_shape=(4,), forward=d.forward, backward=d.backward,
              params={"kernel": (lambda: d.W, "in out")}, grads={"kernel": lambda: d.dW})
    assert check.layer(S.Dense(3, activation="relu"), pre_activation_grad=True, **kw).passed
    assert not check.layer(S.Dense(3, activation="relu"), **kw).passed


def test_softmax_with_logits_of_1000_naive_exp_is_non_finite():
    ok, naive = SL.Softmax(), SL.Softmax(naive=True)
    spec = S.Activation("softmax")
    assert check.layer(spec, input_shape=(4,), forward=ok.forward, backward=ok.backward).passed
    report = check.layer(spec, input_shape=(4,), forward=naive.forward, backward=naive.backward)
    assert not report.passed
    assert any(d.id == "non-finite" for d in report.diagnoses)
    assert any("+-1000" in c for c in report.cases)
    assert "overflow" in str(report)  # the captured warning is shown


def test_dropout_inference_and_standalone_activation():
    assert check.layer(S.Dropout(0.5), input_shape=(3,), forward=lambda x: x, backward=lambda g: g).passed
    assert not check.layer(S.Dropout(0.5), input_shape=(3,), forward=lambda x: x * 2, backward=lambda g: g).passed


# --------------------------------------------------------------------------- bad output
def _dense(**kw):
    d = SL.Dense(4, 2, bug=kw.pop("bug", None))
    return check.layer(S.Dense(2, activation="sigmoid"), input_shape=(4,), forward=kw.pop("forward", d.forward),
                       backward=d.backward, params={"kernel": (lambda: d.W, "out in"), "bias": (lambda: d.b, "out")},
                       grads=kw.pop("grads", {"kernel": lambda: d.dW, "bias": lambda: d.db}), **kw)


@pytest.mark.parametrize("kw, ident", [
    (dict(bug="float32"), "dtype"),
    (dict(bug="nan"), "non-finite"),
    (dict(forward=lambda x: 1 / 0), "raised"),
    (dict(forward=lambda x: np.zeros((x.shape[0], 3))), "shape"),
    (dict(forward=lambda x: [[0.0, 0.0]]), "dtype"),
    (dict(grads={"kernel": lambda: None}), "dtype"),
])
def test_bad_output_gives_a_failed_report_with_a_diagnosis(kw, ident):
    report = _dense(**kw)
    assert not report.passed
    assert ident in [d.id for d in report.diagnoses], report
    str(report)


def test_raised_names_the_users_file_and_line():
    report = _dense(forward=lambda x: 1 / 0)
    text = report.diagnoses[0].text
    assert "ZeroDivisionError" in text and "test_check_layers.py:" in text


def test_prints_are_captured_into_the_report(capsys):
    def noisy(x):
        print("hello from forward")
        return SL.sigmoid(x @ np.zeros((4, 2)))
    report = check.layer(S.Dense(2, activation="sigmoid"), input_shape=(4,), forward=noisy)
    assert capsys.readouterr().out == ""
    assert "hello from forward" in str(report)


@pytest.mark.parametrize("kw, words", [
    (dict(input_layout="n q"), ["input_layout", "'n q'", "unknown axis 'q'", "n f"]),
    (dict(params={"kernel": (lambda: np.zeros((4, 2)), "in in")}), ["twice", "in out"]),
    (dict(params={"kernel": (lambda: np.zeros((4, 2)), "in")}), ["leaves out axis 'out'"]),
    (dict(params={"kernel": (lambda: np.zeros((5, 2)), "in out")}), ["shape (5, 2)", "(4, 2)"]),
    (dict(params={"kernel": (lambda: [[1.0]], "in out")}), ["list, not a NumPy array"]),
    (dict(params={"weights": (lambda: np.zeros((4, 2)), "in out")}), ["no parameter 'weights'", "kernel, bias"]),
    (dict(grads={"kernel": lambda: 0}), ["grads:", "need backward"]),
    (dict(rtol=-1), ["rtol"]),
    (dict(input_shape=(4, 4)), ["input_shape"]),
])
def test_bad_declarations_are_one_line_usage_errors(kw, words):
    args = dict(input_shape=(4,), forward=lambda x: x)
    args.update(kw)
    with pytest.raises(check.CheckUsageError) as e:
        check.layer(S.Dense(2), **args)
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_rtol_loosens_the_bound_and_the_report_shows_it():
    report = check.layer(S.Activation("identity"), input_shape=(3,), forward=lambda x: x * (1 + 1e-7))
    assert not report.passed
    loose = check.layer(S.Activation("identity"), input_shape=(3,), forward=lambda x: x * (1 + 1e-7), rtol=1e-6)
    assert loose.passed and all(r["rtol"] == 1e-6 for r in loose.rows) and "1e-06" in str(loose)


# --------------------------------------------------------------------------- pieces
def test_layouts_convert_both_ways():
    k = Converter("(kh kw) out", kind="conv-kernel", sizes={"out": 2, "in": 1, "kh": 3, "kw": 3}, what="k")
    raw = np.arange(18.0).reshape(9, 2)
    canon = k.to_canonical(raw)
    assert canon.shape == (2, 1, 3, 3) and canon[1, 0, 0, 2] == raw[2, 1]
    np.testing.assert_array_equal(k.from_canonical(canon), raw)
    f = Converter("n (h w c)", kind="flat", sizes={"f": 12}, what="o", image_shape=(3, 2, 2))
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(f.to_canonical(x.transpose(0, 2, 3, 1).reshape(2, 12)), x.reshape(2, 12))
    with pytest.raises(LayoutError, match="leaves a parenthesis open"):
        Converter("n (c h", kind="image", sizes={"c": 1, "h": 2, "w": 2}, what="x")


def test_inputs_have_zeros_ties_and_large_values_and_are_seeded():
    rng = C.generator(3)
    x = C.inputs((2, 4, 4), 3, rng, ties=True, large=True)
    assert (x[0, :, :2] == 0).all()
    assert np.array_equal(x[1], np.round(x[1])) and len(np.unique(x[1])) <= 5
    assert np.abs(x[2]).min() > 990
    np.testing.assert_array_equal(x, C.inputs((2, 4, 4), 3, C.generator(3), ties=True, large=True))
    z = C.logits(4, 3, C.generator(0))
    assert np.abs(z[1]).min() > 990


def test_parity_matrix_draws_zeros_ties_and_large_logits_from_the_same_generator():
    import dataclasses

    import scratch
    from experiments.parity import cases as PC
    from experiments.parity import data as runner

    cases = {c.id: c for c in PC.layer_cases(dtypes=("float64",))}
    relu = next(c for c in cases.values() if c.kind == "conv" and c.id.endswith("-relu-float64"))
    state, x, _ = runner.layer_data(relu)
    bare = (dataclasses.replace(relu.layers[0], activation=None),)
    m = scratch.build(bare, relu.input_shape, dtype="float64")
    m.load_state_dict(state)
    assert (m.forward(x) == 0).any()  # exact zero pre-activations: relu'(0) is decided
    pool = next(c for c in cases.values() if c.kind == "maxpool" and not c.integer_inputs and c.batch == 7)
    _, x, _ = runner.layer_data(pool)
    assert np.array_equal(x[1], np.round(x[1]))  # ties
    soft = next(c for c in cases.values() if c.id.startswith("activation-softmax"))
    _, x, _ = runner.layer_data(soft)
    assert np.abs(x).max() > 990
