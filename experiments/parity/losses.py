"""The ``losses`` part: data loss, L2 penalty, objective, loss gradient and the objective's
parameter gradients; and torch's ``weight_decay=2*lambda`` as the same L2 step."""
from __future__ import annotations

from typing import List

import numpy as np

import scratch

from . import cases as C
from . import engines as E
from .compare import Result, compare
from .data import loss_data
from .results import FRAMEWORKS, Report, available, cached, tag
from .tolerances import rtol_for


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
        out.append(tag(r, int(key.split(".")[0])))
    return out


def loss_results(case_id, layers, input_shape, dtype, loss, l2, data, frameworks):
    state, x, y = data
    mine = E.make("scratch").loss_trace(layers, input_shape, dtype, state, x, y, loss, l2)
    out = []
    for fw in frameworks:
        theirs = cached(("loss", case_id, fw),
                            lambda: E.make(fw).loss_trace(layers, input_shape, dtype, state, x, y, loss, l2))
        out.extend(_compare_loss(case_id, dtype, loss, l2, mine, theirs, fw))
    return out


def run_loss_case(case, frameworks=FRAMEWORKS) -> List[Result]:
    """One loss (with or without L2) against the frameworks' own losses and regularisers."""
    if isinstance(case, str):
        case = next(c for c in C.loss_cases() if c.id == case)
    return loss_results(case.id, case.layers, case.input_shape, case.dtype, case.loss, case.l2, loss_data(case),
                     frameworks)


def run_torch_decay(dtype="float64", steps: int = 3) -> List[Result]:
    """torch ``SGD(weight_decay=2*lambda)`` on kernels only (no penalty in the loss) against
    scratch's SGD with the L2 penalty (docs/DESIGN.md, "The objective and L2"): the same parameters after
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
            out.append(tag(compare(value, theirs[key], case=f"l2-as-weight-decay-{dtype}",
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
