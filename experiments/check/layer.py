"""``check.layer``: one user layer against the spec layer in torch and Keras (float64).

For every case of :func:`experiments.check.cases.layer_cases` (batch 1, and a batch of
three with exact zeros, ties for max pooling and +-1000 for a softmax) xfw calls the user's
code (once per sample when the layouts have no ``n``), reading the weights before every
forward, then builds the references with exactly those weights and compares ``output``,
``input gradient`` and the parameter gradients (summed over the calls), per framework.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from experiments.parity import tolerances
from scratch import checks as scratch_checks

from experiments.diagnose import Diagnosis, diagnose_layer, where_error_lies

from . import cases as C
from . import conventions, references
from .report import RAISED, Report, compare_row, non_finite, problem_row
from .user_code import Captured, UserCodeError
from .user_layer import PARAM_QUANTITY, CheckUsageError, Problem, UserLayer, describe

#: The canonical layout of each quantity, as the diagnosis library reads it.
CANONICAL = {4: "n c h w", 2: "n f"}
PARAM_LAYOUT = {("kernel", 4): "out in kh kw", ("kernel", 2): "in out", ("bias", 1): "out"}


def bound_rtol(rtol) -> float:
    """The bound of a check: the float64 bound of the parity suite, or ``rtol`` (> 0, finite)."""
    if rtol is None:
        return tolerances.rtol_for("float64")
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not math.isfinite(rtol) or rtol <= 0:
        raise CheckUsageError(f"rtol: {rtol!r} is not a bound; expected a finite number > 0 "
                              f"(default {tolerances.rtol_for('float64'):g})")
    return float(rtol)


def check_seed(seed) -> int:
    """The seed of a check's inputs (:func:`scratch.checks.check_seed`), as a usage error."""
    try:
        return scratch_checks.check_seed(seed)
    except ValueError as e:
        raise CheckUsageError(str(e)) from None


@dataclass
class Run:
    """What the user's code gave on one case (canonical), or the problems it had."""

    weights: List[dict] = field(default_factory=list)
    output: Optional[np.ndarray] = None
    input_grad: Optional[np.ndarray] = None
    grads: Dict[str, np.ndarray] = field(default_factory=dict)
    problems: Dict[str, Problem] = field(default_factory=dict)
    raised: Optional[str] = None
    dx_none: bool = False


def run_user(bound, case: C.Case, captured: Captured) -> Run:
    """Call the user's layer on ``case``: per call read weights, forward, backward, gradients."""
    x, dy = case.x, case.dy
    calls = [(x[i:i + 1], dy[i:i + 1]) for i in range(x.shape[0])] if bound.per_sample else [(x, dy)]
    run = Run()
    ys, dxs, sums = [], [], {}
    try:
        for xs, dys in calls:
            try:
                w = bound.read_params(captured)
            except Problem as p:  # a parameter whose layout was left out does not fit the default
                run.problems["output"] = p
                return run
            run.weights.append(w)
            try:
                ys.append(bound.forward(xs, captured))
            except Problem as p:
                run.problems["output"] = p
                return run
            if bound.user.backward is None:
                continue
            try:
                dxs.append(bound.backward(dys, captured))
            except Problem as p:
                run.problems.setdefault("input gradient", p)
            for name, g in bound.read_grads(w, captured).items():
                if isinstance(g, Problem):
                    run.problems.setdefault(g.quantity, g)
                else:
                    sums[name] = sums.get(name, 0.0) + g
    except UserCodeError as e:
        run.raised = str(e)
        return run
    run.output = np.concatenate(ys)
    if dxs and "input gradient" not in run.problems:
        nones = sum(d is None for d in dxs)
        if nones == len(dxs):
            run.dx_none = True
        elif nones:
            run.problems["input gradient"] = Problem("input gradient", "shape", "backward returned None on some "
                                                     "calls and an array on others")
        else:
            run.input_grad = np.concatenate(dxs)
    run.grads = {k: v for k, v in sums.items() if PARAM_QUANTITY[k] not in run.problems}
    return run


def reference(fw, bound, case, weights):
    """(output, input gradient, param grads) of ``fw`` with the weights the user had at each
    call (one trace when they never changed)."""
    spec, shape, pre = bound.spec, bound.input_shape, bound.user.pre_activation_grad
    same = all(all(np.array_equal(w[k], weights[0][k]) for k in w) for w in weights)
    if same or len(weights) == 1:
        return references.layer_trace(fw, spec, shape, weights[0], case.x, case.dy, pre_activation_grad=pre)
    parts = [references.layer_trace(fw, spec, shape, w, case.x[i:i + 1], case.dy[i:i + 1], pre_activation_grad=pre)
             for i, w in enumerate(weights)]
    grads = {k: sum(p[2][k] for p in parts) for k in parts[0][2]}
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), grads


def _layout_of(quantity: str, a: np.ndarray) -> str:
    for name in ("kernel", "bias"):
        if quantity.startswith(name):
            return PARAM_LAYOUT.get((name, a.ndim), "out")
    return CANONICAL.get(a.ndim, "n f")


def explain(report: Report, bound, case, weights, quantity, got, expected, rtol, diagnosed: set) -> None:
    """Diagnoses for a failing quantity (once per quantity), or where its error lies."""
    if quantity in diagnosed:
        return
    diagnosed.add(quantity)
    bad = non_finite(quantity, got, expected)
    if bad is not None:
        report.add_diagnosis(bad)
        return
    found = diagnose_layer(bound.spec, input_shape=bound.input_shape, x=case.x, dy=case.dy, params=weights[0],
                           quantity=quantity, got=got, expected=expected, rtol=rtol,
                           pre_activation_grad=bound.user.pre_activation_grad)
    for d in found:
        report.add_diagnosis(d)
    if not found:
        text = where_error_lies(got, expected, rtol, layout=_layout_of(quantity, expected))
        if text:
            report.notes.append(f"{quantity}: {text}")
    if expected.ndim == 4 and quantity not in report.images:
        report.images[quantity] = (got, expected)


def compare_case(report: Report, bound, case, run: Run, fws, rtol, diagnosed: set) -> None:
    """Rows (and diagnoses) of one case."""
    refs = {fw: reference(fw, bound, case, run.weights) for fw in fws} if run.weights else {}
    quantities = [("output", run.output, 0)]
    if "output" in run.problems:
        pass  # nothing after a bad forward can be compared
    elif bound.user.backward is not None and not run.dx_none:
        quantities.append(("input gradient", run.input_grad, 1))
    if "output" not in run.problems:
        quantities += [(PARAM_QUANTITY[name], run.grads.get(name), name) for name in bound.grads]
    for quantity, got, key in quantities:
        problem = run.problems.get(quantity)
        for fw in fws:
            if problem is not None:
                report.rows.append(problem_row(case=case.name, quantity=quantity, framework=fw, rtol=rtol,
                                               problem=problem.text))
                continue
            expected = refs[fw][2][key] if isinstance(key, str) else refs[fw][key]
            row = compare_row(expected, got, case=case.name, quantity=quantity, framework=fw, rtol=rtol)
            report.rows.append(row)
            if not row["passed"] and fw == fws[0]:
                explain(report, bound, case, run.weights, quantity, got, expected, rtol, diagnosed)
        if problem is not None:
            report.add_diagnosis(Diagnosis(problem.kind, quantity, problem.text, float("nan")))


def declared_notes(bound) -> List[str]:
    notes = []
    for name in bound.param_shapes:
        if name not in bound.params:
            notes.append(f"{name}: not in params, so your layer has none; the references use zeros and its "
                         "gradient is not compared")
        elif name not in bound.grads and bound.user.backward is not None:
            notes.append(f"{name} gradient: no getter in grads (nor grads_from_update), so it is not compared")
    if bound.user.backward is None:
        notes.append("backward not given: only the forward pass is checked")
    if bound.user.grads_from_update is not None:
        notes.append(f"parameter gradients read as (before - after) / {bound.user.grads_from_update:g}")
    return notes


def run_check(user: UserLayer, input_shape, *, rtol=None, seed: int = 0, title: Optional[str] = None,
              infer: bool = True) -> Report:
    """:func:`layer` on an already built :class:`UserLayer`; ``infer``: when it fails and a
    layout was left out, infer the user's layouts (:mod:`.conventions`)."""
    bound = user.bind(input_shape)
    rtol, seed = bound_rtol(rtol), check_seed(seed)
    report = Report(title or f"check.layer {describe(bound.spec)} on input {bound.input_shape}", seed)
    fws, skipped = references.available()
    report.notes += [f"{fw}: not compared, {why}" for fw, why in skipped.items()]
    report.notes += declared_notes(bound)
    captured, diagnosed = Captured(), set()
    for case in C.layer_cases(bound.spec, bound.input_shape, bound.output_shape, seed):
        report.cases.append(case.name)
        run = run_user(bound, case, captured)
        if run.raised is not None:
            for fw in fws or ("torch",):
                report.rows.append(problem_row(case=case.name, quantity="(your code)", framework=fw, rtol=rtol,
                                               problem=run.raised))
            report.add_diagnosis(Diagnosis(RAISED, "(your code)", run.raised, float("nan")))
            break
        if run.dx_none and "backward returned None" not in " ".join(report.notes):
            report.notes.append("backward returned None: the input gradient is not compared")
        compare_case(report, bound, case, run, fws, rtol, diagnosed)
    report.printed, report.warned = captured.text(), captured.warned
    if infer and bound.left_out and not report.passed:
        conventions.explain(report, bound, case.x, lambda u: run_check(u, input_shape, rtol=rtol, seed=seed,
                                                                       title=title, infer=False))
    return report


def layer(spec, *, input_shape, forward, backward=None, input_layout=None, output_layout=None, params=None,
          grads=None, grads_from_update=None, pre_activation_grad: bool = False, rtol=None, seed: int = 0) -> Report:
    """Check one layer of the user's code against the spec layer ``spec`` in torch and Keras.

    ``input_shape``: one sample's canonical shape, ``(C, H, W)`` or ``(features,)``.
    ``forward(x) -> y`` and ``backward(dy) -> dx`` (or None) in the declared layouts
    (einops-style, default ``"n c h w"`` / ``"n f"``; no ``n``: one sample per call).
    ``params``: name -> (getter, layout) for ``"kernel"`` and ``"bias"`` (one left out
    does not exist in the user's layer: zeros in the references, not compared; a bare
    getter leaves the layout out). A layout left out takes the default; when the check
    then fails, the user's layouts are inferred (:mod:`.conventions`), the check re-run
    with them and a ``convention`` diagnosis put first (``report.conventions``).
    ``grads``: name -> getter; or ``grads_from_update=lr`` for code that updates its
    weights in place in backward. ``pre_activation_grad``: backward takes the gradient
    with respect to the pre-activation. ``rtol`` loosens the float64 bound; ``seed``
    seeds the inputs (printed in the report).

    Returns a :class:`~experiments.check.report.Report`; a wrong declaration raises
    :class:`CheckUsageError` (one line). The user's code never raises out of here.
    """
    user = UserLayer(spec, forward, backward, input_layout, output_layout, params, grads, grads_from_update,
                     pre_activation_grad)
    return run_check(user, input_shape, rtol=rtol, seed=seed)
