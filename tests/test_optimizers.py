"""Tests of scratch.optimizers: each flavour against its framework, step by step.

For every optimizer name, both flavours and a few hyperparameter variants, 25 steps
are run on three float64 parameters of different shapes with a fixed sequence of
random gradients; after every step every parameter must equal the native optimizer's
(torch.optim for the torch flavour, keras.optimizers for the Keras flavour) to a
relative 1e-12. Both sides do the same float64 operations in the same order:

* Keras flavour: bit-identical in practice (at most one ulp in Adam, where the powers
  ``beta**t`` come from TensorFlow's ``pow``).
* torch flavour: torch's vectorised CPU kernels (``add_(alpha=)``, ``addcmul_``,
  ``addcdiv_``, ``lerp_``) use a fused multiply-add, one rounding where NumPy does two,
  so each step can differ by an ulp; over 25 steps the worst relative error seen is
  about 1e-14 (absolute about 1e-16), still well inside 1e-12. NumPy has no portable
  FMA, so this is not emulated.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch  # noqa: F401  (torch before TensorFlow: see docs/DESIGN.md, 'Layering')
import keras_models  # noqa: F401  sets the Keras environment before Keras loads
import keras

from scratch import optimizers as so
from scratch.optimizers.base import keras_cast

STEPS = 25
SHAPES = {"kernel": (3, 4), "bias": (4,), "conv": (2, 3, 2, 2)}
RTOL, ATOL = 1e-12, 1e-15

# (name, extra hyperparameters). An empty dict means: scratch with the flavour's
# defaults against the framework with *its own* defaults, so the defaults are checked too.
CASES = [
    ("sgd", {}),
    ("momentum", {}),
    ("momentum", {"momentum": 0.5}),
    ("nesterov", {}),
    ("nesterov", {"momentum": 0.3}),
    ("rmsprop", {}),
    ("rmsprop", {"momentum": 0.9}),
    ("rmsprop", {"centered": True}),
    ("rmsprop", {"centered": True, "momentum": 0.5, "rho": 0.8, "epsilon": 1e-3}),
    ("adagrad", {}),
    ("adagrad", {"initial_accumulator_value": 0.5, "epsilon": 1e-4}),
    ("adam", {}),
    ("adam", {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}),
    ("adam", {"beta_1": 0.3}),  # torch's lerp takes its other branch (weight >= 0.5)
]
LEARNING_RATES = {"sgd": 0.05, "momentum": 0.03, "nesterov": 0.03, "rmsprop": 0.01, "adagrad": 0.1, "adam": 0.01}


def _case_id(case):
    name, hyper = case
    return name + "".join(f"-{k}={v}" for k, v in hyper.items())


def _initial(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def _gradients(seed=1, dtype=np.float64):
    """A fixed sequence of gradients; the scale varies so the moments change shape."""
    rng = np.random.default_rng(seed)
    return [
        {k: (rng.standard_normal(s) * rng.uniform(0.1, 3.0)).astype(dtype) for k, s in SHAPES.items()}
        for _ in range(STEPS)
    ]


def _scratch(name, lr, flavor, hyper, **extra):
    return so.make(name, lr, flavor=flavor, **hyper, **extra)


# --------------------------------------------------------------------------- natives


def _torch_optimizer(name, lr, hyper, tensors):
    """The torch.optim counterpart; hyperparameters not in ``hyper`` keep torch's defaults."""
    h = dict(hyper)
    kw = {"lr": lr, "foreach": False}  # single-tensor path (torch's default on CPU too)
    if name in ("sgd", "momentum", "nesterov"):
        kw["momentum"] = h.pop("momentum", 0.0 if name == "sgd" else 0.9)
        kw["nesterov"] = name == "nesterov"
        return torch.optim.SGD(tensors, **kw)
    if name == "rmsprop":
        for ours, theirs in (("rho", "alpha"), ("epsilon", "eps"), ("momentum", "momentum"), ("centered", "centered")):
            if ours in h:
                kw[theirs] = h.pop(ours)
        return torch.optim.RMSprop(tensors, **kw)
    if name == "adagrad":
        for ours, theirs in (("initial_accumulator_value", "initial_accumulator_value"), ("epsilon", "eps")):
            if ours in h:
                kw[theirs] = h.pop(ours)
        return torch.optim.Adagrad(tensors, **kw)
    if name == "adam":
        if "beta_1" in h or "beta_2" in h:
            kw["betas"] = (h.pop("beta_1", 0.9), h.pop("beta_2", 0.999))
        if "epsilon" in h:
            kw["eps"] = h.pop("epsilon")
        return torch.optim.Adam(tensors, **kw)
    raise AssertionError(name)


def _keras_optimizer(name, lr, hyper):
    """The keras.optimizers counterpart (same argument names as scratch)."""
    h = dict(hyper)
    if name in ("sgd", "momentum", "nesterov"):
        momentum = h.pop("momentum", 0.0 if name == "sgd" else 0.9)
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum, nesterov=name == "nesterov")
    cls = {"rmsprop": keras.optimizers.RMSprop, "adagrad": keras.optimizers.Adagrad, "adam": keras.optimizers.Adam}
    return cls[name](learning_rate=lr, **h)


class _Torch:
    def __init__(self, name, lr, hyper, init):
        self.tensors = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}  # dtype of v
        self.opt = _torch_optimizer(name, lr, hyper, list(self.tensors.values()))

    def step(self, grads):
        for k, t in self.tensors.items():
            t.grad = torch.from_numpy(grads[k].copy())
        self.opt.step()

    def values(self):
        return {k: t.detach().numpy().copy() for k, t in self.tensors.items()}


class _Keras:
    def __init__(self, name, lr, hyper, init):
        self.keys = list(init)
        self.vars = [keras.Variable(v, dtype=v.dtype.name, name=k) for k, v in init.items()]
        self.opt = _keras_optimizer(name, lr, hyper)

    def step(self, grads):
        self.opt.apply_gradients([(grads[k], v) for k, v in zip(self.keys, self.vars)])

    def values(self):
        return {k: np.asarray(v.numpy()) for k, v in zip(self.keys, self.vars)}


NATIVE = {"torch": _Torch, "keras": _Keras}


def _run_and_compare(name, hyper, flavor, scratch_opt, native, grads):
    params = _initial()
    for t, g in enumerate(grads, start=1):
        scratch_opt.step(params, g)
        native.step(g)
        for k, want in native.values().items():
            np.testing.assert_allclose(
                params[k], want, rtol=RTOL, atol=ATOL,
                err_msg=f"{flavor} {name} {hyper}: parameter {k!r} after step {t}",
            )


# --------------------------------------------------------------------------- parity


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("flavor", so.FLAVORS)
def test_matches_framework_every_step(flavor, case):
    name, hyper = case
    lr = LEARNING_RATES[name]
    native = NATIVE[flavor](name, lr, hyper, _initial())
    _run_and_compare(name, hyper, flavor, _scratch(name, lr, flavor, hyper), native, _gradients())


def test_keras_learning_rate_is_float32_variable():
    """Keras stores learning_rate in a floatx (float32) variable even for float64 weights.

    A float64 scratch run with the exact lr differs from Keras by about 1e-7 relative
    (up to 1e-5 on entries near zero) after 25 steps, far above the 1e-12 bound: that is why the Keras flavour rounds lr through float32.
    """
    opt = keras.optimizers.SGD(learning_rate=0.01)
    assert keras.config.floatx() == "float32"
    assert opt.learning_rate.dtype == "float32"
    native = _Keras("sgd", 0.01, {}, _initial())
    exact = _scratch("sgd", 0.01, "keras", {}, lr_dtype="float64")
    with pytest.raises(AssertionError):
        _run_and_compare("sgd", {}, "keras", exact, native, _gradients())


def test_keras_casts_python_floats_through_float32():
    """On the TensorFlow backend ops.cast(0.9, "float64") converts 0.9 to float32 first.

    Keras applies it to SGD's momentum, Adam's betas in beta**t and Adagrad's
    initial_accumulator_value; the Keras flavour mirrors it (scratch.optimizers.base.keras_cast).
    Without it the float64 trajectories differ by 1e-8 (Adagrad) to 1e-4 (Adam) relative.
    """
    assert float(keras.ops.cast(0.9, "float64")) == float(np.float32(0.9)) != 0.9
    assert keras_cast(0.9, np.float64) == np.float32(0.9)


def test_keras_float64_floatx_matches_with_float64_lr():
    """With keras.config.set_floatx("float64") the lr variable is float64: lr_dtype="float64"."""
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        native = _Keras("adam", 0.01, {}, _initial())
    finally:
        keras.config.set_floatx(previous)
    assert native.opt.learning_rate.dtype == "float64"
    _run_and_compare("adam", {}, "keras", _scratch("adam", 0.01, "keras", {}, lr_dtype="float64"),
                     native, _gradients())


def test_torch_default_foreach_path_is_the_single_tensor_one():
    """On CPU torch picks the single-tensor path by default; scratch matches it as is."""
    init, grads = _initial(), _gradients()
    native = _Torch("adam", 0.01, {}, init)
    native.opt = torch.optim.Adam(list(native.tensors.values()), lr=0.01)  # foreach=None
    _run_and_compare("adam", {}, "torch", _scratch("adam", 0.01, "torch", {}), native, grads)


# --------------------------------------------------------------------------- defaults


def test_defaults_match_framework_defaults():
    p = [torch.zeros(1, requires_grad=True)]
    torch_defaults = {
        "sgd": torch.optim.SGD(p).defaults,
        "rmsprop": torch.optim.RMSprop(p).defaults,
        "adagrad": torch.optim.Adagrad(p).defaults,
        "adam": torch.optim.Adam(p).defaults,
    }
    keras_defaults = {
        "sgd": keras.optimizers.SGD().get_config(),
        "rmsprop": keras.optimizers.RMSprop().get_config(),
        "adagrad": keras.optimizers.Adagrad().get_config(),
        "adam": keras.optimizers.Adam().get_config(),
    }
    classes = {"sgd": so.SGD, "rmsprop": so.RMSprop, "adagrad": so.Adagrad, "adam": so.Adam}
    for name, cls in classes.items():
        tc, kc = cls(flavor="torch").get_config(), cls(flavor="keras").get_config()
        td, kd = torch_defaults[name], keras_defaults[name]
        assert tc["learning_rate"] == td["lr"], name
        # Keras's get_config reads the float32 variable back.
        assert kc["learning_rate"] == pytest.approx(kd["learning_rate"], rel=1e-7), name
        if name == "sgd":
            assert (tc["momentum"], tc["nesterov"]) == (td["momentum"], td["nesterov"])
            assert (kc["momentum"], kc["nesterov"]) == (kd["momentum"], kd["nesterov"])
        if name == "rmsprop":
            assert (tc["rho"], tc["epsilon"], tc["momentum"], tc["centered"]) == (
                td["alpha"], td["eps"], td["momentum"], td["centered"])
            assert (kc["rho"], kc["epsilon"], kc["momentum"], kc["centered"]) == (
                kd["rho"], kd["epsilon"], kd["momentum"], kd["centered"])
        if name == "adagrad":
            assert (tc["initial_accumulator_value"], tc["epsilon"]) == (td["initial_accumulator_value"], td["eps"])
            assert (kc["initial_accumulator_value"], kc["epsilon"]) == (kd["initial_accumulator_value"], kd["epsilon"])
        if name == "adam":
            assert (tc["beta_1"], tc["beta_2"], tc["epsilon"]) == (*td["betas"], td["eps"])
            assert (kc["beta_1"], kc["beta_2"], kc["epsilon"]) == (kd["beta_1"], kd["beta_2"], kd["epsilon"])


def test_documented_defaults():
    assert so.RMSprop(flavor="keras").rho == 0.9 and so.RMSprop(flavor="torch").rho == 0.99
    assert so.RMSprop(flavor="keras").epsilon == 1e-7 and so.RMSprop(flavor="torch").epsilon == 1e-8
    assert so.Adagrad(flavor="keras").initial_accumulator_value == 0.1
    assert so.Adagrad(flavor="torch").initial_accumulator_value == 0.0
    assert so.Adagrad(flavor="keras").epsilon == 1e-7 and so.Adagrad(flavor="torch").epsilon == 1e-10
    assert so.Adam(flavor="keras").epsilon == 1e-7 and so.Adam(flavor="torch").epsilon == 1e-8
    assert so.make("momentum", 0.1).momentum == 0.9 and not so.make("momentum", 0.1).nesterov
    n = so.make("nesterov", 0.1, momentum=0.5)
    assert n.momentum == 0.5 and n.nesterov
    assert so.make("sgd", 0.1).momentum == 0.0
    cfg = so.make("adam", 0.01, flavor="torch").get_config()
    assert cfg == {"name": "adam", "flavor": "torch", "learning_rate": 0.01, "lr_dtype": "float64",
                   "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}


# --------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize("flavor", so.FLAVORS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_float32_in_place_and_close_to_float64(case, flavor):
    name, hyper = case
    lr = LEARNING_RATES[name]
    params32 = _initial(np.float32)
    objects = {k: id(v) for k, v in params32.items()}
    params64 = _initial()
    opt32, opt64 = _scratch(name, lr, flavor, hyper), _scratch(name, lr, flavor, hyper)
    for g in _gradients():
        opt32.step(params32, {k: v.astype(np.float32) for k, v in g.items()})
        opt64.step(params64, g)
    for k in SHAPES:
        assert params32[k].dtype == np.float32, k
        assert id(params32[k]) == objects[k], f"{k} was replaced, not updated in place"
        for key, value in opt32._state[k].items():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32, (k, key)
        np.testing.assert_allclose(params32[k], params64[k], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("flavor", so.FLAVORS)
def test_float32_matches_framework_float32(flavor):
    """In float32 the scratch arithmetic stays in float32 and follows the framework's."""
    for name, hyper in CASES:
        lr = LEARNING_RATES[name]
        params = _initial(np.float32)
        native = NATIVE[flavor](name, lr, hyper, params)
        opt = _scratch(name, lr, flavor, hyper)
        for g in _gradients(dtype=np.float32):
            opt.step(params, g)
            native.step(g)
        for k, want in native.values().items():
            assert want.dtype == np.float32
            np.testing.assert_allclose(params[k], want, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{flavor} {name} {hyper} {k}")


def test_float64_gradient_is_cast_to_float32_parameter():
    params = {"w": np.ones(3, dtype=np.float32)}
    so.SGD(0.5).step(params, {"w": np.full(3, 0.1)})
    assert params["w"].dtype == np.float32
    np.testing.assert_array_equal(params["w"], np.float32(1) - np.float32(0.1) * np.float32(0.5))


def test_in_place_update_keeps_views_alive():
    w = np.arange(6.0).reshape(2, 3)
    view = w[0]
    params = {"w": w}
    so.make("adam", 0.1, flavor="torch").step(params, {"w": np.ones((2, 3))})
    assert params["w"] is w
    assert np.all(view == w[0]) and not np.all(view == np.arange(3.0))


@pytest.mark.parametrize("flavor", so.FLAVORS)
@pytest.mark.parametrize("name", so.OPTIMIZERS)
def test_reset_forgets_state(name, flavor):
    grads = _gradients()[:5]
    opt = so.make(name, 0.01, flavor=flavor)
    a = _initial()
    for g in grads:
        opt.step(a, g)
    opt.reset()
    assert opt.iterations == 0
    b, fresh_params = _initial(), _initial()
    fresh = so.make(name, 0.01, flavor=flavor)
    for g in grads:
        opt.step(b, g)
        fresh.step(fresh_params, g)
    for k in SHAPES:
        np.testing.assert_array_equal(b[k], fresh_params[k])


def test_state_is_per_key():
    """Two keys with the same gradients evolve independently of each other's history."""
    opt = so.make("adam", 0.1, flavor="keras")
    params = {"a": np.zeros(2), "b": np.zeros(2)}
    opt.step(params, {"a": np.ones(2), "b": -np.ones(2)})
    assert np.all(params["a"] < 0) and np.all(params["b"] > 0)
    np.testing.assert_array_equal(params["a"], -params["b"])


# --------------------------------------------------------------------------- errors


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError) as exc:
        so.make("adamw", 0.1)
    for name in so.OPTIMIZERS:
        assert name in str(exc.value)


def test_unknown_flavor_lists_choices():
    with pytest.raises(ValueError, match="keras.*torch"):
        so.make("sgd", 0.1, flavor="jax")
    with pytest.raises(ValueError, match="keras.*torch"):
        so.Adam(flavor="jax")


@pytest.mark.parametrize("lr", [0.0, -0.1, math.inf, math.nan, None, "0.1", True])
def test_bad_learning_rate(lr):
    with pytest.raises(ValueError, match="learning_rate"):
        so.make("sgd", lr)


@pytest.mark.parametrize(
    "name, hyper, word",
    [
        ("momentum", {"momentum": 1.0}, "momentum"),
        ("momentum", {"momentum": -0.1}, "momentum"),
        ("nesterov", {"momentum": 0.0}, "nesterov"),
        ("rmsprop", {"rho": 1.0}, "rho"),
        ("rmsprop", {"epsilon": -1e-7}, "epsilon"),
        ("rmsprop", {"centered": "yes"}, "centered"),
        ("adagrad", {"initial_accumulator_value": -0.1}, "initial_accumulator_value"),
        ("adam", {"beta_1": 1.0}, "beta_1"),
        ("adam", {"beta_2": math.nan}, "beta_2"),
        ("adam", {"momentum": 0.9}, "momentum"),
        ("sgd", {"lr_dtype": "float16"}, "lr_dtype"),
    ],
)
def test_bad_hyperparameters(name, hyper, word):
    with pytest.raises(ValueError, match=word):
        so.make(name, 0.1, **hyper)


def test_step_rejects_mismatched_keys_and_shapes():
    opt = so.SGD(0.1)
    with pytest.raises(ValueError, match="different keys"):
        opt.step({"w": np.zeros(2)}, {"v": np.zeros(2)})
    with pytest.raises(ValueError, match="shape"):
        opt.step({"w": np.zeros(2)}, {"w": np.zeros(3)})
    with pytest.raises(TypeError, match="floating-point"):
        opt.step({"w": np.zeros(2, dtype=int)}, {"w": np.zeros(2)})
    opt = so.Adam(0.1)
    opt.step({"w": np.zeros(2)}, {"w": np.ones(2)})
    with pytest.raises(ValueError, match="reset"):
        opt.step({"w": np.zeros(3)}, {"w": np.ones(3)})


def test_scratch_module_imports_no_framework():
    import ast
    import pathlib

    files = sorted(pathlib.Path(so.__file__).parent.glob("*.py"))
    assert {f.stem for f in files} >= {"__init__", "base", "sgd", "rmsprop", "adagrad", "adam"}
    imported = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    assert not imported & {"torch", "tensorflow", "keras", "jax"}, imported


@pytest.mark.parametrize("flavor", so.FLAVORS)
@pytest.mark.parametrize("cls", [so.SGD, so.RMSprop, so.Adagrad, so.Adam])
def test_flavour_rule_is_chosen_once_at_construction(cls, flavor):
    """Each optimizer holds one rule per flavour and runs the one its flavour names."""
    assert set(cls.RULES) == set(so.FLAVORS)
    opt = cls(0.1, flavor=flavor)
    assert opt._rule is cls.RULES[flavor]


def test_presets_are_the_one_definition():
    assert set(so.BASE_OPTIMIZER) == set(so.OPTIMIZERS)
    assert set(so.PRESETS) <= set(so.OPTIMIZERS)
    for name, preset in so.PRESETS.items():
        opt = so.make(name, 0.1)
        assert isinstance(opt, so.SGD) and {k: getattr(opt, k) for k in preset} == preset
