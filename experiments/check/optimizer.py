"""``check.optimizer``: the user's update rule, step by step, against every flavour.

xfw draws two parameters (a ``(3, 4)`` kernel and a ``(4,)`` bias) and ``steps`` random
gradients, then steps the user's rule and ``torch.optim`` / ``keras.optimizers`` on the
same gradients, comparing every parameter after every step (``param after step k (key)``,
the parity suite's trajectory bound). Each framework with its own defaults for whatever
``hyper`` leaves out is one *flavour*; the check passes when the user's rule matches one
flavour at every step, and the summary names that flavour, or, for each flavour, the
first step where the user's rule departs from it.

Two styles of user code:

* ``scheduler``: a zero-argument factory of course-style objects with
  ``update_change(gradient) -> change`` (one object per parameter; ``w -= change``);
* ``step``: ``step(params, grads)`` updating the arrays of ``params`` in place.
"""
from __future__ import annotations

import numpy as np

from experiments.parity import tolerances
from scratch import optimizers as SO

from experiments.diagnose import Diagnosis, diagnose_optimizer

from . import cases as C
from . import references
from .layer import bound_rtol, check_seed
from .report import DTYPE, SHAPE, Report, compare_row, non_finite, problem_row
from .user_code import Captured, UserCodeError, call
from .user_layer import CheckUsageError

STEPS = 25
SHAPES = {"kernel": (3, 4), "bias": (4,)}


def _hyper_ok(name, learning_rate, hyper):
    for fw in references.FRAMEWORKS:
        try:
            SO.make(name, learning_rate, flavor=fw, **hyper)
        except ValueError as e:
            raise CheckUsageError(f"optimizer {name}: {e}") from None


def _user_steps(scheduler, step, params0, grads, captured):
    """The user's parameters after each step (a list of dicts), or a (kind, text) problem."""
    params = {k: v.copy() for k, v in params0.items()}
    scheds = {k: call(scheduler, what="scheduler()", captured=captured) for k in params} if scheduler else None
    out = []
    for k_step, g in enumerate(grads, start=1):
        if scheds is not None:
            for key in params:
                change = call(scheds[key].update_change, g[key].copy(), what=f"update_change (step {k_step})",
                              captured=captured)
                if not isinstance(change, np.ndarray) or change.shape != params[key].shape:
                    what = type(change).__name__ if not isinstance(change, np.ndarray) else f"shape {change.shape}"
                    return out, (SHAPE, f"update_change returned {what} at step {k_step} for {key}; expected the "
                                        f"change, an array of shape {params[key].shape}")
                params[key] = params[key] - change
        else:
            call(step, params, {key: v.copy() for key, v in g.items()}, what=f"step (step {k_step})",
                 captured=captured)
            for key in params0:
                p = params.get(key)
                if not isinstance(p, np.ndarray) or p.shape != params0[key].shape:
                    return out, (SHAPE, f"after step {k_step}, params[{key!r}] is "
                                        f"{type(p).__name__ if not isinstance(p, np.ndarray) else p.shape}; "
                                        f"expected an array of shape {params0[key].shape} updated in place")
        for key, p in params.items():
            if p.dtype != np.float64:
                return out, (DTYPE, f"after step {k_step}, params[{key!r}] has dtype {p.dtype}; expected float64")
        out.append({k: np.array(v, copy=True) for k, v in params.items()})
    return out, None


def optimizer(name: str, *, learning_rate: float, hyper=None, scheduler=None, step=None, steps: int = STEPS,
              rtol=None, seed: int = 0) -> Report:
    """Check an update rule named ``name`` (``sgd``, ``momentum``, ``nesterov``, ``rmsprop``,
    ``adagrad``, ``adam``) with ``learning_rate`` and ``hyper`` (``momentum``, ``rho``,
    ``epsilon``, ``centered``, ``initial_accumulator_value``, ``beta_1``, ``beta_2``,
    ``nesterov``: scratch.optimizers' names) against torch's and Keras's, ``steps`` steps."""
    hyper = dict(hyper or {})
    if name not in SO.OPTIMIZERS:
        raise CheckUsageError(f"optimizer: unknown {name!r}; allowed: {', '.join(SO.OPTIMIZERS)}")
    if (scheduler is None) == (step is None):
        raise CheckUsageError("optimizer: give exactly one of scheduler=<factory of objects with "
                              "update_change(gradient) -> change> or step=<step(params, grads), in place>")
    if not callable(scheduler or step):
        raise CheckUsageError(f"optimizer: {(scheduler or step)!r} is not callable")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise CheckUsageError(f"steps: {steps!r}; expected an int >= 1")
    _hyper_ok(name, learning_rate, hyper)
    rtol = bound_rtol(rtol) if rtol is not None else tolerances.rtol_for("float64", "param after step")
    seed = check_seed(seed)
    rng = C.generator(seed)
    params0 = {k: 0.5 * rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(steps)]
    report = Report(f"check.optimizer {name} lr={learning_rate:g}"
                    + "".join(f" {k}={v}" for k, v in hyper.items()), seed, any_framework=True)
    report.cases.append(f"{steps} steps on random gradients, kernel {SHAPES['kernel']} and bias {SHAPES['bias']}")
    fws, skipped = references.available()
    report.notes += [f"{fw}: not compared, {why}" for fw, why in skipped.items()]
    captured = Captured()
    try:
        mine, problem = _user_steps(scheduler, step, params0, grads, captured)
    except UserCodeError as e:
        mine, problem = [], ("raised", str(e))
    shown = []
    for fw in fws:
        theirs = references.optimizer_trajectory(fw, name, learning_rate, hyper, params0, grads)
        first = None
        for k, (m, t) in enumerate(zip(mine, theirs), start=1):
            for key in SHAPES:
                row = compare_row(t[key], m[key], case=f"step {k}", quantity=f"param after step {k} ({key})",
                                  framework=fw, rtol=rtol)
                report.rows.append(row)
                if not row["passed"] and first is None:
                    first = (k, key, row)
                    shown.append(len(report.rows) - 1)
                    bad = non_finite(row["quantity"], m[key], t[key])
                    if bad is not None:
                        report.add_diagnosis(bad)
        if problem is not None:
            report.rows.append(problem_row(case=f"step {len(mine) + 1}", quantity="param after step "
                                           f"{len(mine) + 1}", framework=fw, rtol=rtol, problem=problem[1]))
            shown.append(len(report.rows) - 1)
        elif mine:
            shown += [len(report.rows) - 2, len(report.rows) - 1]
        if problem is not None:
            report.summary.append(f"{fw} flavour: your rule stopped at step {len(mine) + 1}")
        elif first is None:
            report.summary.append(f"{fw} flavour: MATCHES at every one of the {steps} steps")
        else:
            k, key, row = first
            report.summary.append(f"{fw} flavour: departs at step {k} ({key}: max rel error {row['max_rel']:.2e}, "
                                  f"bound {rtol:.0e})")
    if problem is not None:
        report.add_diagnosis(Diagnosis(problem[0], "param after step", problem[1], float("nan")))
    elif not report.passed and fws:
        expected = {fw: references.optimizer_trajectory(fw, name, learning_rate, hyper, params0, grads)
                    for fw in fws}
        for d in diagnose_optimizer(name, hyper=dict(hyper, learning_rate=learning_rate), params0=params0,
                                    grads=grads, got=mine, expected_by_flavour=expected, rtol=rtol):
            report.add_diagnosis(d)
    report.shown = sorted(set(shown))
    report.printed, report.warned = captured.text(), captured.warned
    return report
