"""``check.network``: the user's list of layers, forward and backward end to end, against
the spec network in torch and Keras, compared layer by layer.

Each entry is a :class:`~experiments.check.user_layer.UserLayer` (the arguments of
:func:`experiments.check.layer` without the input shape). xfw feeds each layer the user's
own output of the layer below (converted from its output layout to the next layer's input
layout), then runs the backward pass from the top under a random upstream gradient. When
some layer takes one sample at a time, the whole network is called one sample at a time
(every backward directly follows its own forward). The summary names the first layer that
disagrees in the forward pass (the lowest layer whose output differs) and in the backward
pass (the highest layer whose gradients differ: gradients flow from the top).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from scratch import spec as S

from experiments.diagnose import Diagnosis, diagnose_layer, diagnose_network

from . import cases as C
from . import references
from .layer import bound_rtol, check_seed
from .report import RAISED, Report, compare_row, non_finite, problem_row
from .user_code import Captured, UserCodeError
from .user_layer import PARAM_QUANTITY, CheckUsageError, Problem, UserLayer, describe

BATCH = 3


def _bind(layers, input_shape):
    if not isinstance(layers, (list, tuple)) or not layers:
        raise CheckUsageError("layers: expected a non-empty list of check.UserLayer(...) entries")
    bounds, shape, image = [], input_shape, None
    for i, u in enumerate(layers):
        if not isinstance(u, UserLayer):
            raise CheckUsageError(f"layer {i}: {u!r} is not a check.UserLayer(spec, forward, backward, ...)")
        if u.pre_activation_grad:
            raise CheckUsageError(f"layer {i}: pre_activation_grad is for check.layer; in a network every "
                                  "backward takes the gradient of its own output")
        b = u.bind(shape, where=f"layer {i}: ", input_image=image)
        bounds.append(b)
        image = b.input_shape if isinstance(u.spec, S.Flatten) and len(b.input_shape) == 3 else None
        shape = b.output_shape
    return bounds


def _run(bounds, x, dy, captured):
    """The user's network on one batch: per layer outputs, input gradients, parameter
    gradients (summed over the calls), the weights of the first call, problems."""
    per_sample = any(b.per_sample for b in bounds)
    calls = [(x[i:i + 1], dy[i:i + 1]) for i in range(x.shape[0])] if per_sample else [(x, dy)]
    n = len(bounds)
    outs, dins = [[] for _ in range(n)], [[] for _ in range(n)]
    sums, problems, weights, raised = [{} for _ in range(n)], {}, [], None
    try:
        for xs, dys in calls:
            w = []
            for i, b in enumerate(bounds):
                try:
                    w.append(b.read_params(captured))
                except Problem as p:  # a parameter whose layout was left out does not fit the default
                    problems[(i, "output")] = p
                    return outs, dins, sums, problems, weights, None
            weights.append(w)
            h = xs
            for i, b in enumerate(bounds):
                try:
                    h = b.forward(h, captured)
                except Problem as p:
                    problems[(i, "output")] = p
                    return outs, dins, sums, problems, weights, None
                outs[i].append(h)
            g = dys
            for i in reversed(range(n)):
                b = bounds[i]
                if b.user.backward is None:
                    break
                try:
                    g = b.backward(g, captured)
                except Problem as p:
                    problems[(i, "input gradient")] = p
                    g = None
                for name, gr in b.read_grads(w[i], captured).items():
                    if isinstance(gr, Problem):
                        problems.setdefault((i, gr.quantity), gr)
                    else:
                        sums[i][name] = sums[i].get(name, 0.0) + gr
                if g is None:
                    break
                dins[i].append(g)
    except UserCodeError as e:
        raised = str(e)
    return outs, dins, sums, problems, weights, raised


def _state(bounds, w):
    return {f"{i}.{k}": v for i, wi in enumerate(w) for k, v in wi.items()}


def _reference(fw, specs, input_shape, bounds, weights, x, dy):
    same = all(np.array_equal(a, b) for w in weights for wi, w0 in zip(w, weights[0])
               for a, b in zip(wi.values(), w0.values()))
    if same or len(weights) == 1:
        return [references.network_trace(fw, specs, input_shape, _state(bounds, weights[0]), x, dy)]
    return [references.network_trace(fw, specs, input_shape, _state(bounds, w), x[i:i + 1], dy[i:i + 1])
            for i, w in enumerate(weights)]


def _cat(traces, pick):
    return np.concatenate([pick(t) for t in traces])


def network(layers, *, input_shape, rtol=None, seed: int = 0) -> Report:
    """Check a whole network of user layers (a list of :class:`UserLayer`) on ``input_shape``."""
    bounds = _bind(layers, input_shape)
    rtol, seed = bound_rtol(rtol), check_seed(seed)
    specs = tuple(b.spec for b in bounds)
    in_shape = bounds[0].input_shape
    names = [f"layer {i} ({describe(b.spec)})" for i, b in enumerate(bounds)]
    report = Report(f"check.network of {len(bounds)} layers on input {in_shape}", seed)
    fws, skipped = references.available()
    report.notes += [f"{fw}: not compared, {why}" for fw, why in skipped.items()]
    rng = C.generator(seed)
    x = C.inputs(in_shape, BATCH, rng, ties=any(C.has_ties(s) for s in specs))
    dy = C.upstream((BATCH,) + bounds[-1].output_shape, rng)
    case = C.describe(x, ties=any(C.has_ties(s) for s in specs), large=False)
    report.cases.append(case)
    captured = Captured()
    outs, dins, sums, problems, weights, raised = _run(bounds, x, dy, captured)
    report.printed, report.warned = captured.text(), captured.warned
    if raised is not None:
        for fw in fws:
            report.rows.append(problem_row(case=case, quantity="(your code)", framework=fw, rtol=rtol, problem=raised))
        report.add_diagnosis(Diagnosis(RAISED, "(your code)", raised, float("nan")))
        return report
    if not weights:  # a parameter could not be read: nothing can be compared
        for (i, what), p in problems.items():
            for fw in fws:
                report.rows.append(problem_row(case=case, quantity=f"layer {i} {what}", framework=fw, rtol=rtol,
                                               problem=p.text))
            report.add_diagnosis(Diagnosis(p.kind, f"layer {i} {what}", p.text, float("nan")))
        return report
    refs = {fw: _reference(fw, specs, in_shape, bounds, weights, x, dy) for fw in fws}
    failing, compared = {}, {}
    for i, b in enumerate(bounds):
        qs = [("output", outs[i], lambda t, i=i: t.outputs[i])]
        if dins[i] and len(dins[i]) == len(outs[i]):
            qs.append(("input gradient", dins[i],
                       lambda t, i=i: t.input_grad if i == 0 else t.output_grads[i - 1]))
        for name in b.grads:
            if name in sums[i]:
                qs.append((PARAM_QUANTITY[name], sums[i][name], lambda t, i=i, name=name: t.param_grads[f"{i}.{name}"]))
        for what in {q for (j, q) in problems if j == i}:
            p = problems[(i, what)]
            for fw in fws:
                report.rows.append(problem_row(case=case, quantity=f"layer {i} {what}", framework=fw, rtol=rtol,
                                               problem=p.text))
            report.add_diagnosis(Diagnosis(p.kind, f"layer {i} {what}", p.text, float("nan")))
            failing.setdefault(i, []).append(what)
        for what, got, pick in qs:
            if (i, what) in problems:
                continue
            got = got if what.endswith("gradient") and what != "input gradient" else np.concatenate(got)
            compared[f"layer {i} {what}"] = got
            for fw in fws:
                traces = refs[fw]
                expected = sum(pick(t) for t in traces) if what in PARAM_QUANTITY.values() else _cat(traces, pick)
                row = compare_row(expected, got, case=case, quantity=f"layer {i} {what}", framework=fw, rtol=rtol)
                row["layer"] = i
                report.rows.append(row)
                if not row["passed"] and fw == fws[0]:
                    failing.setdefault(i, []).append(what)
                    bad = non_finite(row["quantity"], got, expected)
                    if bad is not None:
                        report.add_diagnosis(bad)
    _summarise(report, bounds, names, failing, refs, fws, weights, x, outs, dins, sums, rtol, dy, compared)
    return report


def _network_mistakes(compared, bounds, t, weights, x, dy, rtol) -> list:
    """:func:`experiments.diagnose.diagnose_network` on every compared quantity: mistakes
    that only show when layers are chained (a backward through weights already updated,
    the first layer never updated, a layer dividing by the batch once more)."""
    expected = {q: _expected(t, q) for q in compared}
    lrs = {b.user.grads_from_update for b in bounds if b.user.grads_from_update is not None}
    lr = lrs.pop() if len(lrs) == 1 else 0.01
    return diagnose_network(tuple(b.spec for b in bounds), input_shape=bounds[0].input_shape, x=x, dy=dy,
                            params=_state(bounds, weights), got=compared, expected=expected, rtol=rtol, learning_rate=lr)


def _expected(t, quantity: str) -> np.ndarray:
    """The reference of ``"layer i <what>"`` in trace ``t``."""
    _, i, what = quantity.split(" ", 2)
    i = int(i)
    if what == "output":
        return t.outputs[i]
    if what == "input gradient":
        return t.input_grad if i == 0 else t.output_grads[i - 1]
    return t.param_grads[f"{i}.{what.split()[0]}"]


def _summarise(report, bounds, names, failing, refs, fws, weights, x, outs, dins, sums, rtol, dy, compared):
    forward = sorted(i for i, ws in failing.items() if "output" in ws)
    backward = sorted((i for i, ws in failing.items() if set(ws) - {"output"}), reverse=True)
    report.summary.append(f"forward: {'first layer that disagrees: ' + names[forward[0]] if forward else 'agrees'}")
    report.summary.append("backward: " + (f"first layer (from the top) whose gradients disagree: {names[backward[0]]}"
                                          if backward else "agrees" if any(dins) else "not run"))
    if not fws:
        return
    t = refs[fws[0]][0]
    if forward:
        i, what = forward[0], "output"
    elif backward:
        i = backward[0]
        what = next(w for w in ("kernel gradient", "bias gradient", "input gradient") if w in failing[i])
    else:
        return
    if len(refs[fws[0]]) != 1:
        return  # the weights changed between calls: no single set of weights to diagnose with
    if backward:
        for d in _network_mistakes(compared, bounds, t, weights[0], x, dy, rtol):
            report.add_diagnosis(d)
    b = bounds[i]
    xi = x if i == 0 else t.outputs[i - 1]
    got = {"output": lambda: np.concatenate(outs[i]), "input gradient": lambda: np.concatenate(dins[i])}.get(
        what, lambda: sums[i][what.split()[0]])()
    expected = {"output": t.outputs[i], "input gradient": t.input_grad if i == 0 else t.output_grads[i - 1]}.get(
        what, t.param_grads.get(f"{i}.{what.split()[0]}"))
    for d in diagnose_layer(b.spec, input_shape=b.input_shape, x=xi, dy=t.output_grads[i], params=weights[0][i],
                            quantity=what, got=got, expected=expected, rtol=rtol):
        report.add_diagnosis(dataclasses.replace(d, quantity=f"layer {i} {d.quantity}"))
