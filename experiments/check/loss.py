"""``check.loss``: the user's loss value and gradient against torch's and Keras's.

The user gives ``value(a, y) -> float`` and optionally ``grad(a, y) -> dL/da``, where ``a``
is ``(N, K)`` logits (``wrt="logits"``: the loss includes its softmax or sigmoid, as the
fused cross-entropies) or model outputs (``wrt="outputs"``: probabilities for the
cross-entropies, anything for mse), in ``layout`` (einops axes ``n f``; ``"f n"`` for
code that keeps samples in columns). ``reduction`` says whether the user's loss is the
mean over the batch (``"mean"``) or the sum (``"sum"``); the per-sample loss is Keras's
(categorical: summed over classes; binary and mse: averaged over the outputs).
"""
from __future__ import annotations

import numpy as np

from experiments.diagnose import Diagnosis, diagnose_loss

from . import cases as C
from . import layouts, references
from .layer import bound_rtol, check_seed
from .report import DTYPE, SHAPE, Report, compare_row, non_finite, problem_row
from .user_code import Captured, UserCodeError, call
from .user_layer import CheckUsageError

WRT = {"categorical_crossentropy": ("logits", "outputs"), "binary_crossentropy": ("logits", "outputs"),
       "mse": ("outputs",)}
REDUCTIONS = ("mean", "sum")
BATCHES = (1, 5)


def _inputs(name, wrt, n, k, rng):
    large = wrt == "logits" and n > 1
    z = C.logits(n, k, rng, large=large)
    if wrt == "outputs" and name == "categorical_crossentropy":
        e = np.exp(z / 3 - np.max(z / 3, axis=1, keepdims=True))
        z = e / e.sum(axis=1, keepdims=True)
    elif wrt == "outputs" and name == "binary_crossentropy":
        z = 1 / (1 + np.exp(-z / 3))
    return z, C.targets(name, n, k, rng), large


def _scalar(raw):
    if isinstance(raw, (float, int, np.floating, np.integer)) and not isinstance(raw, bool):
        return float(raw), None
    if isinstance(raw, np.ndarray) and raw.size == 1:
        return float(raw.reshape(())), None
    shape = getattr(raw, "shape", None)
    return None, f"value returned {type(raw).__name__}{'' if shape is None else f' of shape {shape}'}; " \
                 "expected one number (the loss of the whole batch)"


def loss(name: str, *, value, grad=None, wrt: str = "logits", reduction: str = "mean", classes: int = 4,
         layout: str = "n f", rtol=None, seed: int = 0) -> Report:
    """Check a loss; rows ``loss`` and ``loss gradient`` per framework, batches of 1 and 5
    (the batch of 5 holds a sample with logits of +-1000 when ``wrt="logits"``)."""
    if name not in WRT:
        raise CheckUsageError(f"loss: unknown {name!r}; allowed: {', '.join(WRT)}")
    if wrt not in WRT[name]:
        raise CheckUsageError(f"wrt: {wrt!r} is not allowed for {name}; allowed: {', '.join(WRT[name])}")
    if reduction not in REDUCTIONS:
        raise CheckUsageError(f"reduction: {reduction!r}; allowed: {', '.join(REDUCTIONS)} (over the batch)")
    if not callable(value) or (grad is not None and not callable(grad)):
        raise CheckUsageError("value / grad: expected callables value(a, y) -> float and grad(a, y) -> array")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 2:
        raise CheckUsageError(f"classes: {classes!r}; expected an int >= 2")
    rtol, seed = bound_rtol(rtol), check_seed(seed)
    try:
        conv = layouts.Converter(layout, kind="flat", sizes={"f": classes}, what="layout")
    except layouts.LayoutError as e:
        raise CheckUsageError(str(e)) from None
    if conv.per_sample:
        raise CheckUsageError(f"layout: {layout!r} has no batch axis 'n'; a loss takes the whole batch "
                              "(write 'n f' or 'f n')")
    report = Report(f"check.loss {name} on the {wrt} ({reduction} over the batch, {classes} classes)", seed)
    fws, skipped = references.available()
    report.notes += [f"{fw}: not compared, {why}" for fw, why in skipped.items()]
    if grad is None:
        report.notes.append("grad not given: only the value is checked")
    rng, captured, diagnosed = C.generator(seed), Captured(), set()
    for n in BATCHES:
        a, y, large = _inputs(name, wrt, n, classes, rng)
        case = f"batch {n}" + (f" (+-{C.LARGE:g} logits)" if large else "")
        report.cases.append(case)
        try:
            raw_v = call(value, conv.from_canonical(a), conv.from_canonical(y), what="value", captured=captured)
            raw_g = None if grad is None else call(grad, conv.from_canonical(a), conv.from_canonical(y),
                                                   what="grad", captured=captured)
        except UserCodeError as e:
            for fw in fws:
                report.rows.append(problem_row(case=case, quantity="loss", framework=fw, rtol=rtol, problem=str(e)))
            report.add_diagnosis(Diagnosis("raised", "loss", str(e), float("nan")))
            break
        got_v, why = _scalar(raw_v)
        got_g, why_g = None, None
        if grad is not None:
            if not isinstance(raw_g, np.ndarray):
                why_g, kind_g = f"grad returned {type(raw_g).__name__}, not a NumPy array", DTYPE
            elif not conv.fits(raw_g, n):
                why_g, kind_g = f"grad returned shape {raw_g.shape}; layout {conv.describe(n)}", SHAPE
            elif raw_g.dtype != np.float64:
                why_g, kind_g = f"grad returned dtype {raw_g.dtype}; expected float64", DTYPE
            else:
                got_g = conv.to_canonical(raw_g)
        refs = {fw: references.loss_value_and_grad(fw, name, a, y, wrt=wrt, reduction=reduction) for fw in fws}
        for quantity, got, problem, kind, pick in (("loss", got_v, why, SHAPE, 0),
                                                   ("loss gradient", got_g, why_g, None, 1)):
            if quantity == "loss gradient" and grad is None:
                continue
            kind = kind if quantity == "loss" else kind_g if why_g else None
            for fw in fws:
                expected = np.asarray(refs[fw][pick], dtype=np.float64)
                if problem:
                    report.rows.append(problem_row(case=case, quantity=quantity, framework=fw, rtol=rtol,
                                                   problem=problem))
                    continue
                got_a = np.asarray(got, dtype=np.float64)
                row = compare_row(expected, got_a, case=case, quantity=quantity, framework=fw, rtol=rtol)
                report.rows.append(row)
                if not row["passed"] and fw == fws[0] and quantity not in diagnosed:
                    diagnosed.add(quantity)
                    bad = non_finite(quantity, got_a, expected)
                    found = [bad] if bad is not None else diagnose_loss(
                        name, logits_or_outputs=a, targets=y, quantity=quantity, got=got_a, expected=expected,
                        rtol=rtol, reduction=reduction)
                    for d in found:
                        report.add_diagnosis(d)
            if problem:
                report.add_diagnosis(Diagnosis(kind, quantity, problem, float("nan")))
    report.printed, report.warned = captured.text(), captured.warned
    return report
