"""Student-style losses, update rules and networks (tests/diagnose_students/training.py):
each bug is named first; the correct ones get no diagnosis. Also: every id has a student."""
import numpy as np
import pytest

from experiments.diagnose import diagnose_loss, diagnose_network, diagnose_optimizer, ids
from experiments.diagnose.networks import quantities
from experiments.parity.tolerances import rtol_for
from scratch import spec as S
from scratch.optimizers import make
from tests.diagnose_students import training as T

RTOL, TRAJ = rtol_for("float64"), rtol_for("float64", "param after step 1")


def loss_case(fn, bugs, quantity, reduction="mean", seed=0):
    rng = np.random.default_rng(seed)
    z, y = rng.normal(size=(6, 4)) * 3, np.eye(4)[rng.integers(0, 4, 6)]
    value, grad = fn(z, y, bugs)
    ref_value, ref_grad = fn(z, y, ())
    got, expected = (np.asarray(value), np.asarray(ref_value)) if quantity == "loss" else (grad, ref_grad)
    return diagnose_loss("categorical_crossentropy", logits_or_outputs=z, targets=y, quantity=quantity, got=got,
                         expected=expected, rtol=RTOL, reduction=reduction)


@pytest.mark.parametrize("bug,quantity", [
    ("loss-divided-by-classes", "loss"), ("loss-divided-by-classes", "loss gradient"),
    ("loss-summed-not-averaged", "loss gradient"), ("epsilon", "loss"),
    ("loss-gradient-of-outputs", "loss gradient"), ("softmax-wrong-axis", "loss gradient")])
def test_cross_entropy_bug_is_named_first(bug, quantity):
    found = loss_case(T.cross_entropy, {bug}, quantity)
    assert found and found[0].id == bug, [d.id for d in found]


def test_summed_loss_divided_by_the_batch_is_named():
    found = loss_case(T.summed_cross_entropy, {"loss-averaged-not-summed"}, "loss", reduction="sum")
    assert found[0].id == ids.LOSS_AVERAGED


@pytest.mark.parametrize("quantity", ["loss", "loss gradient"])
def test_correct_loss_gets_no_diagnosis(quantity):
    assert loss_case(T.cross_entropy, (), quantity) == []


P0 = {"0.kernel": np.random.default_rng(1).normal(size=(3, 2)), "0.bias": np.random.default_rng(2).normal(size=2)}
GRADS = [{k: np.random.default_rng(10 + t).normal(size=v.shape) * 0.1 for k, v in P0.items()} for t in range(6)]


def references(name, hyper):
    """What the caller gives: the scratch engine's rule of each flavour, learning rate exact."""
    out = {}
    for flavour in ("keras", "torch"):
        h = {k: v for k, v in hyper.items() if k != "l2"}
        opt = make(name, h.pop("learning_rate"), flavor=flavour, lr_dtype="float64", **h)
        w = {k: v.copy() for k, v in P0.items()}
        traj = []
        for g in GRADS:
            g = {k: g[k] + (2 * hyper.get("l2", 0.0) * w[k] if k.endswith("kernel") else 0) for k in g}
            opt.step(w, g)
            traj.append({k: v.copy() for k, v in w.items()})
        out[flavour] = traj
    return out


def run_student(rule, takes_w=False):
    rules = {k: rule(k) for k in P0}
    w = {k: v.copy() for k, v in P0.items()}
    traj = []
    for g in GRADS:
        w = {k: w[k] - (rules[k].update_change(g[k], w[k]) if takes_w else rules[k].update_change(g[k]))
             for k in w}
        traj.append(w)
    return traj


OPT = [  # (bug, optimizer name, hyper, student factory given bugs, takes w)
    ("momentum-sign", "momentum", {"learning_rate": 0.05}, lambda b, key: T.Momentum(0.05, 0.9, bugs=b), False),
    ("dampening", "momentum", {"learning_rate": 0.05}, lambda b, key: T.Momentum(0.05, 0.9, bugs=b), False),
    ("nesterov-as-classical", "nesterov", {"learning_rate": 0.05},
     lambda b, key: T.Momentum(0.05, 0.9, nesterov=True, bugs=b), False),
    ("eps-inside-sqrt", "rmsprop", {"learning_rate": 0.01}, lambda b, key: T.RMSprop(0.01, 0.99, 1e-8, b), False),
    ("adagrad-initial-accumulator", "adagrad", {"learning_rate": 0.05},
     lambda b, key: T.Adagrad(0.05, 1e-7, 0.1, b), False),
    ("accumulator-per-row", "adagrad", {"learning_rate": 0.05}, lambda b, key: T.Adagrad(0.05, 1e-7, 0.1, b), False),
    ("bias-correction-missing", "adam", {"learning_rate": 0.01}, lambda b, key: T.Adam(0.01, bugs=b), True),
    ("step-counter-frozen", "adam", {"learning_rate": 0.01}, lambda b, key: T.Adam(0.01, bugs=b), True),
    ("l2-after-step", "adam", {"learning_rate": 0.01, "l2": 0.05}, lambda b, key: T.Adam(0.01, l2=0.05 if key.endswith("kernel") else 0.0, bugs=b), True),
]


@pytest.mark.parametrize("bug,name,hyper,factory,takes_w", OPT, ids=[o[0] for o in OPT])
def test_update_rule_bug_is_named_first(bug, name, hyper, factory, takes_w):
    refs = references(name, hyper)
    got = run_student(lambda key: factory({bug}, key), takes_w)
    found = diagnose_optimizer(name, hyper=hyper, params0=P0, grads=GRADS, got=got, expected_by_flavour=refs,
                               rtol=TRAJ)
    assert found and found[0].id == bug, [d.id for d in found]
    first = 2 if bug == "step-counter-frozen" else 1  # t = 1 is right at the first step
    assert found[0].quantity == f"param after step {first}"


@pytest.mark.parametrize("bug,name,hyper,factory,takes_w", OPT, ids=[o[0] for o in OPT])
def test_correct_update_rule_gets_no_diagnosis(bug, name, hyper, factory, takes_w):
    refs = references(name, hyper)
    got = run_student(lambda key: factory((), key), takes_w)
    assert diagnose_optimizer(name, hyper=hyper, params0=P0, grads=GRADS, got=got, expected_by_flavour=refs,
                              rtol=TRAJ) == []


def test_rmsprop_epsilon_outside_the_root_is_named():
    """The planted Keras-flavour breakage, as a student would write it: Keras defaults, epsilon outside."""
    hyper = {"learning_rate": 0.01}
    got = run_student(lambda key: T.RMSprop(0.01, 0.9, 1e-7))
    found = diagnose_optimizer("rmsprop", hyper=hyper, params0=P0, grads=GRADS, got=got,
                               expected_by_flavour=references("rmsprop", hyper), rtol=TRAJ)
    assert found[0].id == ids.EPS_OUTSIDE_SQRT


LAYERS = (S.Dense(4, activation="relu"), S.Dense(3, activation="softmax"))
KEYS = ("layer 0 kernel gradient", "layer 0 bias gradient", "layer 1 kernel gradient", "layer 0 kernel after step",
        "layer 1 kernel after step")


def net_case(bugs, l2=0.0, seed=0):
    rng = np.random.default_rng(seed)
    params = {"0.kernel": rng.normal(size=(5, 4)), "0.bias": rng.normal(size=4),
              "1.kernel": rng.normal(size=(4, 3)), "1.bias": rng.normal(size=3)}
    x, y = rng.normal(size=(6, 5)), np.eye(3)[rng.integers(0, 3, 6)]
    net = T.TwoLayerNet(params, 0.1, l2, bugs)
    grads = net.step(x, y)
    got = {}
    for i in (0, 1):
        got[f"layer {i} kernel gradient"], got[f"layer {i} bias gradient"] = grads[f"{i}.kernel"], grads[f"{i}.bias"]
        got[f"layer {i} kernel after step"] = net.p[f"{i}.kernel"]
    got["layer 0 input gradient"] = net.dx
    ref = quantities(LAYERS, (5,), x, y, "categorical_crossentropy", params, learning_rate=0.1, l2=l2)
    keys = KEYS + ("layer 0 input gradient", "layer 1 bias gradient")
    return diagnose_network(LAYERS, input_shape=(5,), x=x, targets=y, loss="categorical_crossentropy",
                            params=params, got={k: got[k] for k in keys}, expected={k: ref[k] for k in keys},
                            rtol=RTOL, learning_rate=0.1, l2=l2)


@pytest.mark.parametrize("bug,l2", [("backward-uses-updated-weights", 0.0), ("first-layer-not-updated", 0.0),
                                    ("batch-scaled-twice", 0.0), ("l2-gradient-half", 0.01),
                                    ("l2-on-biases", 0.01)])
def test_network_bug_is_named_first(bug, l2):
    found = net_case({bug}, l2)
    assert found and found[0].id == bug, [d.id for d in found]


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_correct_network_gets_no_diagnosis(l2):
    assert net_case((), l2) == []


def test_every_id_has_a_student():
    """Each id this package produces is named first by at least one student test above or in
    test_diagnose_layers / test_diagnose_breakages (the caller's own ids are excluded)."""
    import tests.test_diagnose_breakages as TB
    import tests.test_diagnose_layers as TL

    covered = {b.replace("kernel-gradient-", "kernel-") for b, _, _ in TL.CONV}
    covered |= {ids.TIES_ALL, ids.STRIDE_IGNORED, ids.OVERLAP_OVERWRITES, ids.AVGPOOL_COUNTS_PADDING,
                ids.IN_OUT_SWAPPED, ids.ACT_AT_OUTPUT, ids.SOFTMAX_DIAGONAL, ids.FLATTEN_ORDER,
                ids.LOSS_DIVIDED_BY_CLASSES, ids.LOSS_SUMMED, ids.LOSS_AVERAGED, ids.LOSS_GRADIENT_OF_OUTPUTS,
                ids.SOFTMAX_AXIS, ids.EPS_OUTSIDE_SQRT}
    covered |= {o[0] for o in OPT} | {"backward-uses-updated-weights", "first-layer-not-updated",
                                       "batch-scaled-twice", "l2-gradient-half", "l2-on-biases"}
    covered |= {ids.BREAKAGE_IDS[n] for n in TB.CASES}
    import tests.test_check_report_text as TR
    covered |= TR.COVERED
    assert set(ids.ALL) - set(ids.CALLER_IDS) - covered == set()
