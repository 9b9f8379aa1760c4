"""The ``layers`` part: every layer case, output and every gradient under a random upstream
gradient (a sum or ones could hide a transpose); and Dropout in training mode, scratch
given each framework's own mask (:mod:`.dropout`)."""
from __future__ import annotations

from typing import List

import numpy as np


from . import cases as C
from . import engines as E
from .dropout import run_dropout_training
from .compare import Result, compare
from .data import layer_data
from .results import FRAMEWORKS, PARAM_QUANTITY, Report, available, cached


def _layer_trace(case, fw):
    state, x, dout = layer_data(case)
    return cached(("layer", case.id, fw),
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
