"""Run the parity matrix: scratch against each framework, as lists of :class:`Result`.

Four parts, each a list of :class:`~experiments.parity.compare.Result` built by the one
helper :func:`~experiments.parity.compare.compare`:

``layers``
    :func:`run_layer_case`: every case of :func:`cases.layer_cases`; quantities
    ``output``, ``input gradient``, ``kernel gradient``, ``bias gradient`` under a random
    upstream gradient (a sum or ones could hide a transpose); :func:`run_dropout_training`:
    Dropout in training mode, scratch given each framework's own mask.
``losses``
    :func:`run_loss_case`: ``data loss``, ``L2 penalty`` (Keras: the stock
    ``keras.regularizers.L2``; torch: the explicit penalty), ``objective``, ``loss
    gradient (logits)`` (or ``(outputs)`` for MSE), ``output`` and the objective's
    ``<i>.kernel gradient`` / ``<i>.bias gradient``; :func:`run_torch_decay` shows torch's
    ``SGD(weight_decay=2*lambda)`` on kernels takes the step of the penalty.
``models``
    :func:`run_model_parity`: for a registered architecture, the loss part above
    (categorical cross-entropy with L2 on one batch) and a layer-by-layer comparison
    (``layer i (Kind) output`` / ``input gradient`` / ``kernel gradient`` /
    ``bias gradient``, each tagged with ``Result.layer``) from which
    :func:`first_disagreeing_layer` names the first layer where two frameworks part.
``optimizers``
    :func:`run_trajectory`: 25 steps of an optimizer with L2 on a registered architecture,
    scratch with the torch flavour against ``torch.optim`` and with the Keras flavour
    against ``keras.optimizers``, float64; ``param after step k (key)``.
    :func:`adam_gap` measures what Keras and torch Adam cannot agree on.

Frameworks are imported lazily; one that is not installed is reported in
:attr:`Report.skipped` by name, never as passed. Framework-side computations are cached
per case (they do not depend on the scratch engine), the scratch side is recomputed on
every call, so a planted bug (:mod:`.breakages`) always shows.
"""
from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

import scratch
from scratch import architectures

from experiments import inputs

from . import cases as C
from . import engines as E
from .compare import Result, compare
from .dropout import run_dropout_training
from .tolerances import rtol_for

FRAMEWORKS = ("torch", "keras")
PARTS = ("layers", "losses", "models", "optimizers")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam")
STEPS = 25
TRAJECTORY_ARCH = "course_cnn"
TRAJECTORY_BATCH = 8
#: Learning rates of the trajectories: large enough that 25 steps move every weight.
LEARNING_RATES = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "rmsprop": 0.003, "adagrad": 0.05,
                  "adam": 0.003}

PARAM_QUANTITY = {"kernel": "kernel gradient", "bias": "bias gradient"}
#: Trajectory variants beyond the defaults: name -> (optimizer, hyperparameters the
#: optimizers accept), so that centering, RMSprop's momentum and non-default betas,
#: rhos, epsilons and accumulators are compared too (Nesterov is in OPTIMIZERS).
VARIANTS = {
    "rmsprop-centered": ("rmsprop", {"centered": True}),
    "rmsprop-momentum": ("rmsprop", {"momentum": 0.5}),
    "rmsprop-rho0.8-eps1e-4": ("rmsprop", {"rho": 0.8, "epsilon": 1e-4}),
    "adam-betas0.8,0.99-eps1e-4": ("adam", {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-4}),
    "adagrad-init0.2-eps1e-4": ("adagrad", {"initial_accumulator_value": 0.2, "epsilon": 1e-4}),
    "momentum-0.5": ("momentum", {"momentum": 0.5}),
}
TRAJECTORIES = OPTIMIZERS + tuple(VARIANTS)


# --------------------------------------------------------------------------- data
def _rng(case_id: str, salt: int = 0) -> np.random.Generator:
    """Seeded by the id without its dtype: float32 and float64 cases see the same numbers."""
    base = case_id.rsplit("-", 1)[0]
    return np.random.default_rng([zlib.crc32(base.encode()), salt])


def initial_state(layers, input_shape, dtype, rng) -> dict:
    """Scratch's Glorot weights (seed 1) with random biases: a zero bias hides bias bugs
    (an L2 applied to biases, for one)."""
    ref = scratch.build(layers, input_shape, dtype=np.float64, seed=1)
    state = ref.state_dict()
    for k in state:
        if k.endswith(".bias"):
            state[k] = rng.uniform(-0.5, 0.5, state[k].shape)
    return {k: v.astype(dtype) for k, v in state.items()}


def _output_shape(layers, input_shape):
    return scratch.build(layers, input_shape, dtype=np.float64).output_shape


def layer_data(case: C.LayerCase):
    """(state, x, dout) of a layer case, drawn by the generator ``xfw check`` uses: exact zeros
    (with bias entry 0 set to 0, so that a zero block gives exact 0 pre-activations), ties
    for max pooling, +-1000 for a softmax (:mod:`experiments.check.cases`)."""
    rng = _rng(case.id)
    state = initial_state(case.layers, case.input_shape, case.dtype, rng)
    layer = case.layers[0]
    state = inputs.zero_bias_entry(state, "0.bias" if getattr(layer, "activation", None) is not None else None)
    ties = case.integer_inputs or inputs.has_ties(layer)
    x = inputs.inputs(case.input_shape, case.batch, rng, ties=ties, large=inputs.has_softmax(layer))
    dout = inputs.upstream((case.batch,) + _output_shape(case.layers, case.input_shape), rng)
    return state, x.astype(case.dtype), dout.astype(case.dtype)


def loss_data(case):
    """(state, x, y) of a loss or model case (y: one-hot / 0-1 / real targets)."""
    rng = _rng(case.id, 1)
    state = initial_state(case.layers, case.input_shape, case.dtype, rng)
    loss = getattr(case, "loss", "categorical_crossentropy")
    # Loss cases get the +-1000 sample (the logits of a fused loss become large); model
    # cases keep moderate inputs (a lenet on +-1000 pixels saturates every unit).
    x = inputs.inputs(case.input_shape, case.batch, rng, large=hasattr(case, "loss"))
    k = _output_shape(case.layers, case.input_shape)[0]
    return state, x.astype(case.dtype), inputs.targets(loss, case.batch, k, rng).astype(case.dtype)


# --------------------------------------------------------------------------- report
@dataclass
class Report:
    """Results plus the frameworks that could not run (``name -> reason``)."""

    results: List[Result] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> List[Result]:
        return [r for r in self.results if not r.passed]

    @property
    def passed(self) -> bool:
        """True when something was compared and every comparison passed (skipped
        frameworks are listed in :attr:`skipped`, never counted as passed)."""
        return bool(self.results) and not self.failures

    def extend(self, other: "Report") -> "Report":
        self.results.extend(other.results)
        self.skipped.update(other.skipped)
        return self


def available(frameworks=FRAMEWORKS):
    """(frameworks that can run, {skipped framework: reason})."""
    ok, skipped = [], {}
    for fw in frameworks:
        reason = E.skip_reason(fw)
        if reason:
            skipped[fw] = reason
        else:
            ok.append(fw)
    return ok, skipped


_FW_CACHE: dict = {}


def _framework(key, fn):
    if key not in _FW_CACHE:
        _FW_CACHE[key] = fn()
    return _FW_CACHE[key]


def clear_cache() -> None:
    """Forget cached framework results (they never depend on the scratch engine)."""
    _FW_CACHE.clear()


def _tag(result: Result, layer: Optional[int]) -> Result:
    return dataclasses.replace(result, layer=layer)


# --------------------------------------------------------------------------- layers
def _layer_trace(case, fw):
    state, x, dout = layer_data(case)
    return _framework(("layer", case.id, fw),
                      lambda: E.make(fw).trace(case.layers, case.input_shape, case.dtype, state, x, dout))


def run_layer_case(case, frameworks=FRAMEWORKS) -> List[Result]:
    """Output, input gradient and every parameter gradient of one layer case, per framework."""
    if isinstance(case, str):
        case = C.layer_case(case)
    state, x, dout = layer_data(case)
    mine = E.make("scratch").trace(case.layers, case.input_shape, case.dtype, state, x, dout)
    out = []
    for fw in frameworks:
        theirs = _layer_trace(case, fw)
        kw = dict(case=case.id, framework=fw, dtype=case.dtype)
        out.append(compare(mine.outputs[-1], theirs.outputs[-1], quantity="output", **kw))
        out.append(compare(mine.input_grad, theirs.input_grad, quantity="input gradient", **kw))
        for key, g in mine.param_grads.items():
            out.append(compare(g, theirs.param_grads.get(key, np.zeros(0)),
                               quantity=PARAM_QUANTITY[key.split(".")[1]], **kw))
    return out


def run_layer_cases(kinds=None, dtypes=C.DTYPES, frameworks=FRAMEWORKS) -> Report:
    ok, skipped = available(frameworks)
    report = Report(skipped=skipped)
    for case in C.layer_cases(kinds, dtypes):
        report.results.extend(run_layer_case(case, ok))
    if kinds is None or "dropout" in kinds:
        for d in dtypes:
            report.results.extend(run_dropout_training(d, frameworks=ok))
    return report


# --------------------------------------------------------------------------- losses
def _loss_quantity_name(loss: str) -> str:
    from scratch import losses as SL

    return "loss gradient (logits)" if SL.get(loss).fused_activation else "loss gradient (outputs)"


def _compare_loss(case_id, dtype, loss, l2, mine, theirs, fw) -> List[Result]:
    kw = dict(case=case_id, framework=fw, dtype=dtype)
    out = [compare(mine.data_loss, theirs.data_loss, quantity="data loss", **kw)]
    if l2:
        out.append(compare(mine.penalty, theirs.penalty, quantity="L2 penalty", **kw))
        out.append(compare(mine.objective, theirs.objective, quantity="objective", **kw))
    out.append(compare(mine.loss_input_grad, theirs.loss_input_grad, quantity=_loss_quantity_name(loss), **kw))
    out.append(compare(mine.output, theirs.output, quantity="output", **kw))
    for key, g in mine.param_grads.items():
        r = compare(g, theirs.param_grads.get(key, np.zeros(0)), quantity=f"{key} gradient", **kw)
        out.append(_tag(r, int(key.split(".")[0])))
    return out


def _loss_run(case_id, layers, input_shape, dtype, loss, l2, data, frameworks):
    state, x, y = data
    mine = E.make("scratch").loss_trace(layers, input_shape, dtype, state, x, y, loss, l2)
    out = []
    for fw in frameworks:
        theirs = _framework(("loss", case_id, fw),
                            lambda: E.make(fw).loss_trace(layers, input_shape, dtype, state, x, y, loss, l2))
        out.extend(_compare_loss(case_id, dtype, loss, l2, mine, theirs, fw))
    return out


def run_loss_case(case, frameworks=FRAMEWORKS) -> List[Result]:
    """One loss (with or without L2) against the frameworks' own losses and regularisers."""
    if isinstance(case, str):
        case = next(c for c in C.loss_cases() if c.id == case)
    return _loss_run(case.id, case.layers, case.input_shape, case.dtype, case.loss, case.l2, loss_data(case),
                     frameworks)


def run_torch_decay(dtype="float64", steps: int = 3) -> List[Result]:
    """torch ``SGD(weight_decay=2*lambda)`` on kernels only (no penalty in the loss) against
    scratch's SGD with the L2 penalty (DESIGN.md section 4): the same parameters after
    every step."""
    import torch
    import torch.nn.functional as F

    import torch_models as tm

    case = C.loss_cases((dtype,))[1]  # categorical cross-entropy with L2
    state, x, y = loss_data(case)
    lr = 0.1
    sm = scratch.build(case.layers, case.input_shape, dtype=dtype, seed=0)
    sm.load_state_dict(state)
    sm.compile("categorical_crossentropy", "sgd", learning_rate=lr, l2=case.l2, flavor="torch")
    model = tm.from_scratch(tm.build(case.layers, case.input_shape, dtype=dtype), state)
    kernels = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    others = [p for p in model.parameters() if all(p is not k for k in kernels)]
    opt = torch.optim.SGD([{"params": kernels, "weight_decay": 2 * case.l2},
                           {"params": others, "weight_decay": 0.0}], lr=lr, foreach=False)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    body = model[:-1]  # the logits: cross-entropy is fused with the final softmax
    out = []
    for k in range(1, steps + 1):
        sm.train_step(x, y)
        opt.zero_grad()
        F.cross_entropy(body(xt), yt).backward()
        opt.step()
        theirs = tm.to_scratch(model)
        for key, value in sm.state_dict().items():
            out.append(_tag(compare(value, theirs[key], case=f"l2-as-weight-decay-{dtype}",
                                    quantity=f"param after step {k} ({key})", framework="torch", dtype=dtype,
                                    rtol=rtol_for(dtype)), int(key.split(".")[0])))
    return out


def run_loss_cases(dtypes=C.DTYPES, frameworks=FRAMEWORKS) -> Report:
    ok, skipped = available(frameworks)
    report = Report(skipped=skipped)
    for case in C.loss_cases(dtypes):
        report.results.extend(run_loss_case(case, ok))
    if "torch" in ok:
        for d in dtypes:
            report.results.extend(run_torch_decay(d))
    return report


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class Disagreement:
    """Where two frameworks first part: spec entry ``layer``, ``quantity`` (``output``,
    ``input gradient``, ``kernel gradient``, ``bias gradient``) and the failing result."""

    layer: int
    quantity: str
    result: Result

    def message(self) -> str:
        return f"first disagreement at layer {self.layer}: {self.quantity}; {self.result.message()}"


_WHATS = ("output", "kernel gradient", "bias gradient", "input gradient")


def _what(result: Result) -> str:
    for w in _WHATS:
        if result.quantity.endswith(w):
            return w
    return result.quantity


def first_disagreeing_layer(results, framework: Optional[str] = None,
                            reference: str = "scratch") -> Optional[Disagreement]:
    """The first layer where ``reference`` (scratch) and ``framework`` disagree, from
    layer-tagged results (all frameworks when ``framework`` is None).

    Forward first: the lowest layer whose output differs (everything above inherits it).
    If every output agrees, backward: gradients flow from the top, so the highest layer
    with a differing kernel, bias or input gradient (in that order) is where it starts.
    None when all agree.
    """
    tagged = [r for r in results if r.layer is not None and (framework is None or r.framework == framework)
              and r.reference == reference and r.quantity.startswith("layer ")]
    bad = [r for r in tagged if not r.passed]
    if not bad:
        return None
    forward = [r for r in bad if _what(r) == "output"]
    if forward:
        r = min(forward, key=lambda r: r.layer)
        return Disagreement(r.layer, "output", r)
    top = max(r.layer for r in bad)
    at = sorted((r for r in bad if r.layer == top), key=lambda r: _WHATS.index(_what(r)))
    return Disagreement(top, _what(at[0]), at[0])


def model_data(case: C.ModelCase):
    """(state, x, dout) of the layer-by-layer comparison of a model case."""
    rng = _rng(case.id, 2)
    state = initial_state(case.layers, case.input_shape, case.dtype, rng)
    x = rng.standard_normal((case.batch,) + tuple(case.input_shape))
    dout = rng.standard_normal((case.batch,) + _output_shape(case.layers, case.input_shape))
    return state, x.astype(case.dtype), dout.astype(case.dtype)


def _model_trace(case, fw):
    state, x, dout = model_data(case)
    return _framework(("model", case.id, fw),
                      lambda: E.make(fw).trace(case.layers, case.input_shape, case.dtype, state, x, dout))


def _layer_by_layer(case, mine, theirs, framework, reference="scratch") -> List[Result]:
    out = []
    kw = dict(case=case.id, framework=framework, dtype=case.dtype, reference=reference)
    for i in range(len(case.layers)):
        name = C.label(case.layers, i)
        din_mine = mine.input_grad if i == 0 else mine.output_grads[i - 1]
        din_theirs = theirs.input_grad if i == 0 else theirs.output_grads[i - 1]
        out.append(_tag(compare(mine.outputs[i], theirs.outputs[i], quantity=f"{name} output", **kw), i))
        for key in (f"{i}.kernel", f"{i}.bias"):
            if key in mine.param_grads:
                q = f"{name} {PARAM_QUANTITY[key.split('.')[1]]}"
                out.append(_tag(compare(mine.param_grads[key], theirs.param_grads.get(key, np.zeros(0)),
                                        quantity=q, **kw), i))
        out.append(_tag(compare(din_mine, din_theirs, quantity=f"{name} input gradient", **kw), i))
    return out


def run_model_layers(case, frameworks=FRAMEWORKS) -> List[Result]:
    """Layer by layer, under a random upstream gradient on the model's output: scratch
    against each framework."""
    state, x, dout = model_data(case)
    mine = E.make("scratch").trace(case.layers, case.input_shape, case.dtype, state, x, dout)
    out = []
    for fw in frameworks:
        out.extend(_layer_by_layer(case, mine, _model_trace(case, fw), fw))
    return out


def run_frameworks_layers(case, reference: str = "torch", framework: str = "keras") -> List[Result]:
    """The same layer-by-layer comparison between two frameworks, without scratch
    (``Result.reference`` is ``reference``), so :func:`first_disagreeing_layer` can say
    where Keras and torch themselves part."""
    if isinstance(case, str):
        case = next(c for c in C.model_cases() if c.id == case)
    return _layer_by_layer(case, _model_trace(case, reference), _model_trace(case, framework), framework,
                           reference)


def run_model_parity(case, frameworks=FRAMEWORKS) -> List[Result]:
    """Loss, output and all gradients of one batch (categorical cross-entropy + L2), then the
    layer-by-layer comparison; with both frameworks, also torch against Keras layer by layer.
    ``case``: a :class:`cases.ModelCase` or an id like ``"lenet-float64"``."""
    if isinstance(case, str):
        case = next(c for c in C.model_cases() if c.id == case)
    out = _loss_run(case.id, case.layers, case.input_shape, case.dtype, "categorical_crossentropy", case.l2,
                    loss_data(case), frameworks)
    out += run_model_layers(case, frameworks)
    if set(FRAMEWORKS) <= set(frameworks):
        out += run_frameworks_layers(case, *FRAMEWORKS)
    return out


def run_models(archs=None, dtypes=C.DTYPES, frameworks=FRAMEWORKS) -> Report:
    ok, skipped = available(frameworks)
    report = Report(skipped=skipped)
    for case in C.model_cases(archs, dtypes):
        report.results.extend(run_model_parity(case, ok))
    return report


# --------------------------------------------------------------------------- optimizers
def trajectory_data(arch: str, steps: int = STEPS, batch: int = TRAJECTORY_BATCH):
    """``steps`` batches (x, integer labels) for ``arch``, float64."""
    layers, shape = architectures.get(arch), C.arch_input_shape(arch)
    k = _output_shape(layers, shape)[0]
    rng = np.random.default_rng([zlib.crc32(f"trajectory-{arch}".encode())])
    return [(rng.standard_normal((batch,) + shape), rng.integers(0, k, batch)) for _ in range(steps)]


def _trainer(fw: str, arch: str, optimizer: str, lr=None, flavor=None, **hyper):
    from experiments.frameworks import make_trainer

    optimizer, preset = VARIANTS.get(optimizer, (optimizer, {}))
    hyper = {**preset, **hyper}
    layers, shape = architectures.get(arch), C.arch_input_shape(arch)
    kwargs = dict(loss="categorical_crossentropy", optimizer=optimizer,
                  learning_rate=LEARNING_RATES[optimizer] if lr is None else lr, l2=C.L2, dtype="float64", seed=0)
    if flavor is not None:
        kwargs["flavor"] = flavor
    return make_trainer(fw, layers, shape, **kwargs, **hyper)


def _trajectory(trainer, data) -> list:
    """The scratch-layout state after each step."""
    states = []
    for x, y in data:
        trainer.train_step(x, y)
        states.append(trainer.state_dict())
    return states


def run_trajectory(optimizer: str, framework: str, arch: str = TRAJECTORY_ARCH, steps: int = STEPS) -> List[Result]:
    """``steps`` steps of ``optimizer`` (a name of :data:`OPTIMIZERS` or :data:`VARIANTS`) with
    L2: scratch (``framework``'s flavour) against the framework's native optimizer; every
    parameter after every step, float64."""
    data = trajectory_data(arch, steps)
    theirs = _framework(("trajectory", arch, optimizer, framework, steps),
                        lambda: _trajectory(_trainer(framework, arch, optimizer), data))
    mine = _trajectory(_trainer("scratch", arch, optimizer, flavor=framework), data)
    case = f"{optimizer}-{framework}-flavour-{arch}-l2-float64"
    out = []
    for k, (m, t) in enumerate(zip(mine, theirs), start=1):
        for key, value in m.items():
            out.append(_tag(compare(value, t[key], case=case, quantity=f"param after step {k} ({key})",
                                    framework=framework, dtype="float64"), int(key.split(".")[0])))
    return out


def first_failing_step(results) -> Optional[Result]:
    """The earliest failing ``param after step k`` result (ties: the first parameter)."""
    bad = [r for r in results if not r.passed and r.quantity.startswith("param after step")]
    return min(bad, key=lambda r: int(r.quantity.split()[3]), default=None)


def run_trajectories(optimizers=OPTIMIZERS, frameworks=FRAMEWORKS, arch: str = TRAJECTORY_ARCH,
                     steps: int = STEPS) -> Report:
    ok, skipped = available(frameworks)
    report = Report(skipped=skipped)
    for fw in ok:
        for name in optimizers:
            report.results.extend(run_trajectory(name, fw, arch, steps))
    return report


def adam_gap(steps: int = STEPS, arch: str = TRAJECTORY_ARCH, epsilon: float = 1e-7,
             native: bool = True) -> Result:
    """How far Keras's and torch's Adam part over ``steps`` steps with the same
    hyperparameters (lr, betas, ``epsilon``) and L2, float64: the worst ``param after step k``
    comparison (torch taken as the reference), as a :class:`Result`.

    ``native``: Keras's and torch's own optimizers (what users see; this includes Keras's
    float32 learning rate and betas). Otherwise the two scratch flavours with every
    hyperparameter exact in float32 (lr 2**-9, betas 0.875 and 1 - 2**-9, the Keras
    flavour's lr kept in float64), so that the only difference left is where epsilon
    enters: Keras adds it to sqrt(v) before the bias correction (the paper's "epsilon
    hat"), torch after.
    """
    data = trajectory_data(arch, steps)
    if native:
        a = _trajectory(_trainer("keras", arch, "adam", lr=0.003, epsilon=epsilon), data)
        b = _trajectory(_trainer("torch", arch, "adam", lr=0.003, epsilon=epsilon), data)
        what, ref = "keras.optimizers.Adam", "torch.optim.Adam"
    else:
        hyper = dict(lr=2.0 ** -9, beta_1=0.875, beta_2=1 - 2.0 ** -9, epsilon=epsilon)
        a = _trajectory(_trainer("scratch", arch, "adam", flavor="keras", lr_dtype="float64", **hyper), data)
        b = _trajectory(_trainer("scratch", arch, "adam", flavor="torch", **hyper), data)
        what, ref = "scratch Keras flavour", "scratch torch flavour"
    worst = None
    for k, (sa, sb) in enumerate(zip(a, b), start=1):
        for key in sa:
            r = compare(sb[key], sa[key], case=f"adam-eps{epsilon:g}-{arch}-l2-float64",
                        quantity=f"param after step {k} ({key})", framework=what, dtype="float64", reference=ref)
            if worst is None or r.max_rel > worst.max_rel:
                worst = _tag(r, int(key.split(".")[0]))
    return worst


# --------------------------------------------------------------------------- all
def run(parts=PARTS, *, archs=None, kinds=None, dtypes=C.DTYPES, frameworks=FRAMEWORKS,
        steps: int = STEPS) -> Report:
    """The whole matrix (or the chosen ``parts``); what ``xfw parity`` runs.

    ``archs`` restricts the model part and the trajectories (which use the first of
    ``archs``, default ``course_cnn``); trajectories run in float64 only, when float64
    is among ``dtypes``.
    """
    report = Report()
    ok, skipped = available(frameworks)
    report.skipped.update(skipped)
    if "layers" in parts:
        report.extend(run_layer_cases(kinds, dtypes, ok))
    if "losses" in parts:
        report.extend(run_loss_cases(dtypes, ok))
    if "models" in parts:
        report.extend(run_models(archs, dtypes, ok))
    if "optimizers" in parts and "float64" in dtypes:
        arch = archs[0] if archs else TRAJECTORY_ARCH
        report.extend(run_trajectories(TRAJECTORIES, ok, arch, steps))
    return report
