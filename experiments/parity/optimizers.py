"""The ``optimizers`` part: 25-step trajectories of every optimizer with L2, scratch's
flavour of each framework against the framework's own optimizer; and the Adam gap."""
from __future__ import annotations

from typing import List, Optional


from scratch import architectures
from scratch.optimizers import OPTIMIZERS

from . import cases as C
from .compare import Result, compare
from .data import trajectory_data
from .results import FRAMEWORKS, Report, available, cached, tag

from .data import STEPS, TRAJECTORY_ARCH

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
#: Learning rates of the trajectories: large enough that 25 steps move every weight.
LEARNING_RATES = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "rmsprop": 0.003, "adagrad": 0.05,
                  "adam": 0.003}


def trainer_for(fw: str, arch: str, optimizer: str, lr=None, flavor=None, **hyper):
    from experiments.runtime import make_trainer

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
    theirs = cached(("trajectory", arch, optimizer, framework, steps),
                        lambda: _trajectory(trainer_for(framework, arch, optimizer), data))
    mine = _trajectory(trainer_for("scratch", arch, optimizer, flavor=framework), data)
    case = f"{optimizer}-{framework}-flavour-{arch}-l2-float64"
    out = []
    for k, (m, t) in enumerate(zip(mine, theirs), start=1):
        for key, value in m.items():
            out.append(tag(compare(value, t[key], case=case, quantity=f"param after step {k} ({key})",
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
        a = _trajectory(trainer_for("keras", arch, "adam", lr=0.003, epsilon=epsilon), data)
        b = _trajectory(trainer_for("torch", arch, "adam", lr=0.003, epsilon=epsilon), data)
        what, ref = "keras.optimizers.Adam", "torch.optim.Adam"
    else:
        hyper = dict(lr=2.0 ** -9, beta_1=0.875, beta_2=1 - 2.0 ** -9, epsilon=epsilon)
        a = _trajectory(trainer_for("scratch", arch, "adam", flavor="keras", lr_dtype="float64", **hyper), data)
        b = _trajectory(trainer_for("scratch", arch, "adam", flavor="torch", **hyper), data)
        what, ref = "scratch Keras flavour", "scratch torch flavour"
    worst = None
    for k, (sa, sb) in enumerate(zip(a, b), start=1):
        for key in sa:
            r = compare(sb[key], sa[key], case=f"adam-eps{epsilon:g}-{arch}-l2-float64",
                        quantity=f"param after step {k} ({key})", framework=what, dtype="float64", reference=ref)
            if worst is None or r.max_rel > worst.max_rel:
                worst = tag(r, int(key.split(".")[0]))
    return worst
