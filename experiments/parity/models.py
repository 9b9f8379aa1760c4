"""The ``models`` part: each registered architecture, the loss part on one batch and a
layer-by-layer comparison naming the first layer where two frameworks part."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np


from . import cases as C
from . import engines as E
from .compare import Result, compare
from .data import loss_data, model_data
from .results import FRAMEWORKS, PARAM_QUANTITY, Report, available, cached, tag


from .losses import loss_results

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


def _model_trace(case, fw):
    state, x, dout = model_data(case)
    return cached(("model", case.id, fw),
                      lambda: E.make(fw).trace(case.layers, case.input_shape, case.dtype, state, x, dout))


def _layer_by_layer(case, mine, theirs, framework, reference="scratch") -> List[Result]:
    out = []
    kw = dict(case=case.id, framework=framework, dtype=case.dtype, reference=reference)
    for i in range(len(case.layers)):
        name = C.label(case.layers, i)
        din_mine = mine.input_grad if i == 0 else mine.output_grads[i - 1]
        din_theirs = theirs.input_grad if i == 0 else theirs.output_grads[i - 1]
        out.append(tag(compare(mine.outputs[i], theirs.outputs[i], quantity=f"{name} output", **kw), i))
        for key in (f"{i}.kernel", f"{i}.bias"):
            if key in mine.param_grads:
                q = f"{name} {PARAM_QUANTITY[key.split('.')[1]]}"
                out.append(tag(compare(mine.param_grads[key], theirs.param_grads.get(key, np.zeros(0)),
                                        quantity=q, **kw), i))
        out.append(tag(compare(din_mine, din_theirs, quantity=f"{name} input gradient", **kw), i))
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
    out = loss_results(case.id, case.layers, case.input_shape, case.dtype, "categorical_crossentropy", case.l2,
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
