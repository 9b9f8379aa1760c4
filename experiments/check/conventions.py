"""Conventions inferred: the layouts a user left out, found from what their code returns.

When ``input_layout``, ``output_layout`` or a parameter's layout is left out and the check
fails, :func:`infer` tries the plausible conventions: for the input, channels first or
last, with or without the batch axis (xfw must call the code to see, so only these); for
each parameter, every layout of its axes that fits the array the getter returns
(:func:`experiments.diagnose.candidate_layouts`: any axis order, flattened groups); for
the output, :func:`experiments.diagnose.infer_layout` on the user's raw output against
the reference computed with the parameters read that way. The first combination under
which the output matches is the user's convention (defaults first); failing that, the
first under which the output is a mistake the diagnosis library names (the layouts are
right, the code has a bug). :func:`explain`
re-runs the check with it and reports it as a ``convention`` diagnosis, not as a bug: the
text names the argument to pass and what the check says then.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Dict, Optional

import numpy as np

import scratch
from scratch import spec as S

from experiments.diagnose import Diagnosis, candidate_layouts, diagnose_layer, ids, infer_layout
from experiments.parity import tolerances
from experiments.parity.compare import compare

from . import layouts
from .user_code import Captured, UserCodeError, call, read
from .user_layer import DEFAULT_PARAM_LAYOUT

#: Input layouts tried when ``input_layout`` is left out (one-channel images may also drop ``c``).
IMAGE_INPUTS = ("n c h w", "n h w c", "c h w", "h w c")
ONE_CHANNEL_INPUTS = ("n h w", "h w")
FLAT_INPUTS = ("n f", "f")
#: The diagnose library's names of the canonical layouts of each kind of parameter.
_PARAM_KIND = {"conv-kernel": "out in kh kw", "dense-kernel": "in out", "bias": "out"}


def _input_candidates(bound) -> list:
    if "input_layout" not in bound.left_out:
        return [bound.conv_in]
    shape = bound.input_shape
    if len(shape) == 3:
        texts = IMAGE_INPUTS + (ONE_CHANNEL_INPUTS if shape[0] == 1 else ())
        kind, sizes = "image", dict(zip("chw", shape))
    else:
        texts, kind, sizes = FLAT_INPUTS, "flat", {"f": shape[0]}
    return [layouts.Converter(t, kind=kind, sizes=sizes, what="input_layout") for t in texts]


def _param_candidates(bound, name, captured) -> list:
    """(layout text, canonical array) for each layout the raw parameter fits."""
    getter, conv = bound.params[name]
    raw = read(getter, what=f"params[{name!r}] getter", captured=captured)
    if f"params[{name!r}]" not in bound.left_out:
        return [(conv.layout.text, conv.to_canonical(raw).astype(np.float64))]
    canonical = DEFAULT_PARAM_LAYOUT[conv.kind]
    sizes = dict(conv.sizes)
    out = []
    for text in [canonical] + candidate_layouts(_PARAM_KIND[conv.kind], sizes, raw.ndim):
        try:
            c = layouts.Converter(text, kind=conv.kind, sizes=sizes, what=name)
        except layouts.LayoutError:
            continue
        if c.fits(raw) and text not in (t for t, _ in out):
            out.append((text, c.to_canonical(raw).astype(np.float64)))
    return out


def _reference_output(spec, input_shape, params: dict, x) -> np.ndarray:
    model = scratch.build((spec,), tuple(input_shape), dtype=np.float64)
    if params:
        model.load_state_dict({f"0.{k}": v for k, v in params.items()})
    return model.forward(x, training=False)


def _output_layouts(bound, raw, expected, per_sample: bool) -> list:
    """Output layouts under which ``raw`` equals ``expected`` (declared one, or inferred)."""
    if "output_layout" not in bound.left_out:
        conv, n = bound.conv_out, (None if per_sample else expected.shape[0])
        if not conv.fits(raw, n):
            return []
        got = conv.to_canonical(raw)
        got = got[None] if conv.per_sample else got
        ok = compare(expected, got, case="", quantity="", framework="", rtol=tolerances.rtol_for("float64")).passed
        return [conv.layout.text] if ok else []
    if expected.ndim == 4:
        found = infer_layout(raw, expected, kind="activation-image")
    elif isinstance(bound.spec, S.Flatten) and len(bound.input_shape) == 3:
        found = infer_layout(raw, expected.reshape((-1,) + bound.input_shape), kind="activation-image")
    else:
        found = infer_layout(raw, expected, kind="activation-flat")
    return [t for t in found if ("n" not in t.split()) == per_sample]


def infer(bound, x: np.ndarray) -> Optional[Dict[str, str]]:
    """The left-out declarations under which the user's forward matches on ``x`` (canonical
    batch): ``{"input_layout": "n h w c", "params['kernel']": "(kh kw) out", ...}``; else the
    first combination under which the output is a named mistake; None when neither."""
    captured = Captured()  # the user's prints here are not part of the report
    try:
        params = {name: _param_candidates(bound, name, captured) for name in bound.params}
    except (UserCodeError, TypeError):
        return None
    zeros = {k: np.zeros(s) for k, s in bound.param_shapes.items()}
    names = list(params)
    near = None  # the first combination under which the output is a named mistake
    for conv_in in _input_candidates(bound):
        per_sample = conv_in.per_sample
        xs = x[:1] if per_sample else x
        try:
            raw = call(bound.user.forward, conv_in.from_canonical(xs[0] if per_sample else xs),
                       what="forward", captured=captured)
        except UserCodeError:
            continue
        if not isinstance(raw, np.ndarray) or not np.issubdtype(raw.dtype, np.number):
            continue
        for combo in itertools.product(*(params[k] for k in names)):
            weights = dict(zeros, **{k: a for k, (_, a) in zip(names, combo)})
            with np.errstate(all="ignore"):
                expected = _reference_output(bound.spec, bound.input_shape, weights, xs)
            outs = _output_layouts(bound, raw, expected, per_sample)
            found = {"input_layout": conv_in.layout.text, "output_layout": outs[0] if outs else None}
            found.update({f"params[{k!r}]": t for k, (t, _) in zip(names, combo)})
            if outs:
                return {k: v for k, v in found.items() if k in bound.left_out}
            out = None if near is not None else _named(bound, conv_in, raw, expected, xs, weights)
            if out is not None:
                found["output_layout"] = out
                near = {k: v for k, v in found.items() if k in bound.left_out}
    return near


def _named(bound, conv_in, raw, expected, xs, weights) -> Optional[str]:
    """The output layout (declared; else the default or the input's) under which the output
    is a named mistake of the reference computed with ``weights``: the layouts are then
    right and the code has a bug. None when there is none."""
    outs = [bound.conv_out]
    if "output_layout" in bound.left_out and len(bound.output_shape) == len(bound.input_shape) == 3:
        try:
            outs.append(layouts.Converter(conv_in.layout.text, kind="image", what="output_layout",
                                          sizes=dict(zip("chw", bound.output_shape))))
        except layouts.LayoutError:
            pass
    for conv in outs:
        if conv.per_sample != conv_in.per_sample or not conv.fits(raw, None if conv.per_sample else xs.shape[0]):
            continue
        got = conv.to_canonical(raw)
        got = got[None] if conv.per_sample else got
        if diagnose_layer(bound.spec, input_shape=bound.input_shape, x=xs, dy=np.zeros_like(expected),
                          params=weights, quantity="output", got=got, expected=expected,
                          rtol=tolerances.rtol_for("float64")):
            return conv.layout.text
    return None


def _with(user, found: Dict[str, str]):
    """The user's declaration with the inferred layouts filled in."""
    params = {}
    for name, entry in (user.params or {}).items():
        getter = entry if callable(entry) else entry[0]
        layout = found.get(f"params[{name!r}]", None if callable(entry) else entry[1])
        params[name] = (getter, layout)
    return dataclasses.replace(user, input_layout=found.get("input_layout", user.input_layout),
                               output_layout=found.get("output_layout", user.output_layout),
                               params=params or user.params)


def _phrase(what: str, layout: str) -> str:
    if what.startswith("params"):
        name = what[len("params['"):-2]
        return f"your {name} is laid out {layout!r}: pass params={{{name!r}: (getter, {layout!r})}}"
    array = {"input_layout": "input", "output_layout": "output"}[what]
    return f"your code takes its {array} laid out {layout!r}: pass {what}={layout!r}" if array == "input" \
        else f"your {array} is laid out {layout!r}: pass {what}={layout!r}"


def explain(report, bound, x, rerun) -> None:
    """Infer the left-out layouts of a failed check; on a match, re-run with them
    (``rerun(user) -> Report``) and put a ``convention`` diagnosis first."""
    found = infer(bound, x)
    if found is None:
        report.notes.append(f"{', '.join(bound.left_out)} left out: no plausible layout makes your output match "
                            "the reference (tried channels first and last, with and without the batch axis, and "
                            "every parameter layout that fits), so the layouts are not what is wrong")
        return
    defaults = {"input_layout": bound.conv_in.layout.text, "output_layout": bound.conv_out.layout.text}
    defaults.update({f"params[{k!r}]": c.layout.text for k, (_, c) in bound.params.items()})
    changed = {k: v for k, v in found.items() if v != defaults.get(k)}
    if not changed:
        return  # the defaults are the user's layouts: the failure is a real mistake
    again = rerun(_with(bound.user, found))
    if again.passed:
        verdict = "with it, the check passes"
    else:
        first = next((r for r in again.rows if not r["passed"]), None)
        where = f" ({first['quantity']})" if first else ""
        verdict = f"with it, the check still fails{where}: see below"
    quantity = "input" if "input_layout" in changed else "output" if "output_layout" in changed else \
        next(iter(changed))[len("params['"):-2]
    text = "; ".join(_phrase(k, v) for k, v in changed.items()) + f"; {verdict}"
    report.diagnoses[:] = [Diagnosis(ids.CONVENTION, quantity, text, 0.0)] + list(again.diagnoses)
    report.notes += [f"with the inferred layouts: {n}" for n in again.notes if n not in report.notes]
    report.conventions = dict(changed)


__all__ = ["explain", "infer"]
