"""Optimizer hypotheses: each update rule written out in float64 with one mistake.

``hyper``: the keyword arguments of :func:`scratch.optimizers.make` (``learning_rate``
and any of ``momentum``, ``nesterov``, ``rho``, ``epsilon``, ``centered``,
``initial_accumulator_value``, ``beta_1``, ``beta_2``; missing ones take each flavour's
default) plus ``l2`` (xfw's lambda: the gradient of a key ending in ``kernel`` gains
``2 * l2 * w``). ``params0``: the canonical parameters before step 1; ``grads``: one
dict per step (the data gradients); ``got``: the user's parameters after each step;
``expected_by_flavour``: the same from each framework. A hypothesis is run with each
flavour's defaults and matches when every parameter after every step is within ``rtol``;
one that equals a flavour's reference is never claimed.
"""
from __future__ import annotations

import numpy as np

from scratch.optimizers import make

from . import ids
from .core import Diagnosis, residual

FLAVOURS = ("keras", "torch")


def _per_row(x, how):
    """An accumulator per row: reduced over every axis but the first (1-D arrays: one number)."""
    axes = tuple(range(1, x.ndim)) if x.ndim > 1 else (0,)
    r = x.sum(axis=axes, keepdims=True) if how == "sum" else x.mean(axis=axes, keepdims=True)
    return np.broadcast_to(r, x.shape)


def _step_fn(name, cfg, flavour, m):
    """``update(w, g, state, t) -> new w`` for optimizer ``name`` with mistake options ``m``."""
    lr = cfg["learning_rate"]
    eps = cfg.get("epsilon", 0.0)
    eps_at = m.get("eps", "inside" if flavour == "keras" else "outside")
    row = m.get("row")

    def sq(gg):
        """The squared gradient as it enters the accumulator: per element, or one value per row."""
        return _per_row(gg, row) if row else gg

    def root(s):
        return np.sqrt(s + eps) if eps_at == "inside" else np.sqrt(s) + eps

    if name in ("sgd", "momentum", "nesterov"):
        mom, nest = cfg["momentum"], cfg["nesterov"] and not m.get("classical")

        def update(w, g, st, t):
            if mom == 0.0:
                return w - lr * g
            sign = m.get("sign")
            if sign == "apply":
                st["v"] = mom * st.get("v", 0.0) - lr * g
                return w - st["v"]
            if sign == "buffer":
                st["v"] = mom * st.get("v", 0.0) + lr * g
                return w + st["v"]
            if sign == "momentum":
                st["v"] = lr * g - mom * st.get("v", 0.0)
                return w - st["v"]
            damp = m.get("dampening")
            if damp == "ema":
                st["b"] = mom * st.get("b", 0.0) + (1 - mom) * g
            elif damp == "torch":
                st["b"] = g if "b" not in st else mom * st["b"] + (1 - mom) * g
            else:
                st["b"] = g if "b" not in st else mom * st["b"] + g
            return w - lr * (g + mom * st["b"] if nest else st["b"])
        return update
    if name == "rmsprop":
        rho, mom, centered = cfg["rho"], cfg["momentum"], cfg["centered"]

        def update(w, g, st, t):
            st["s"] = rho * st.get("s", 0.0) + (1 - rho) * sq(g * g)
            d = st["s"]
            if centered:
                st["a"] = rho * st.get("a", 0.0) + (1 - rho) * g
                d = d - st["a"] ** 2
            step = g / root(d)
            if mom > 0.0:
                st["b"] = mom * st.get("b", 0.0) + step
                step = st["b"]
            return w - lr * step
        return update
    if name == "adagrad":
        init = m.get("init", cfg["initial_accumulator_value"])

        def update(w, g, st, t):
            st["G"] = st.get("G", init) + sq(g * g)
            return w - lr * g / root(st["G"])
        return update
    b1, b2 = cfg["beta_1"], cfg["beta_2"]

    def update(w, g, st, t):
        st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
        st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * sq(g * g)
        t = 1 if m.get("frozen") else t
        c1 = 1.0 if m.get("no_correction") in ("both", "m") else 1 - b1 ** t
        c2 = 1.0 if m.get("no_correction") in ("both", "v") else 1 - b2 ** t
        v = st["v"]
        if flavour == "keras" and "eps" not in m and not m.get("no_correction"):
            return w - lr * np.sqrt(c2) / c1 * st["m"] / (np.sqrt(v) + eps)  # epsilon hat
        return w - lr / c1 * st["m"] / root(v / c2)
    return update


def simulate(name, hyper, params0, grads, flavour, mistake=None) -> list:
    """Parameters after each step under ``mistake`` (a dict of options, see :data:`MISTAKES`)."""
    m = mistake or {}
    hyper = dict(hyper)
    l2 = float(hyper.pop("l2", 0.0) or 0.0)
    cfg = make(name, hyper.pop("learning_rate"), flavor=flavour, **hyper).get_config()
    update = _step_fn(name, cfg, flavour, m)
    w = {k: np.asarray(v, dtype=np.float64).copy() for k, v in params0.items()}
    state = {k: {} for k in w}
    out = []
    for t, g in enumerate(grads, start=1):
        new = {}
        for k, p in w.items():
            gk = np.asarray(g[k], dtype=np.float64)
            decay = 2 * l2 * p if l2 and k.endswith("kernel") else 0.0
            if m.get("l2_after"):
                new[k] = update(p, gk, state[k], t) - cfg["learning_rate"] * decay
            else:
                new[k] = update(p, gk + decay, state[k], t)
        w = new
        out.append({k: v.copy() for k, v in w.items()})
    return out


#: (id, optimizers it applies to, options, what, fix)
MISTAKES = (
    (ids.EPS_OUTSIDE_SQRT, ("rmsprop", "adagrad"), {"eps": "outside"}, "epsilon added after the square root",
     "this rule adds epsilon under the square root, sqrt(s + eps) - move it inside"),
    (ids.EPS_INSIDE_SQRT, ("rmsprop", "adagrad", "adam"), {"eps": "inside"}, "epsilon added under the square root",
     "this rule adds epsilon to the square root, sqrt(s) + eps - move it outside"),
    (ids.BIAS_CORRECTION_MISSING, ("adam",), {"no_correction": "both"}, "no bias correction",
     "divide m by 1 - beta_1**t and v by 1 - beta_2**t"),
    (ids.BIAS_CORRECTION_MISSING, ("adam",), {"no_correction": "m"}, "no bias correction of m",
     "divide m by 1 - beta_1**t"),
    (ids.BIAS_CORRECTION_MISSING, ("adam",), {"no_correction": "v"}, "no bias correction of v",
     "divide v by 1 - beta_2**t"),
    (ids.STEP_COUNTER_FROZEN, ("adam",), {"frozen": True}, "the step counter t stuck at 1",
     "increase t by one at every step (and keep it between calls)"),
    (ids.MOMENTUM_SIGN, ("momentum", "nesterov", "sgd"), {"sign": "apply"}, "v = m v - lr g, then w -= v",
     "with v = m v - lr g the step is w += v"),
    (ids.MOMENTUM_SIGN, ("momentum", "nesterov", "sgd"), {"sign": "buffer"}, "v = m v + lr g, then w += v",
     "with v = m v + lr g the step is w -= v"),
    (ids.MOMENTUM_SIGN, ("momentum", "nesterov", "sgd"), {"sign": "momentum"}, "v = lr g - m v",
     "the momentum term adds: v = m v + lr g, then w -= v"),
    (ids.DAMPENING, ("momentum", "nesterov", "sgd"), {"dampening": "ema"},
     "the buffer as a moving average, b = m b + (1 - m) g from 0", "neither framework damps: b = m b + g"),
    (ids.DAMPENING, ("momentum", "nesterov", "sgd"), {"dampening": "torch"},
     "torch's dampening = momentum, b = m b + (1 - m) g", "neither framework damps by default: b = m b + g"),
    (ids.NESTEROV_AS_CLASSICAL, ("nesterov", "sgd", "momentum"), {"classical": True}, "nesterov=True ignored",
     "with Nesterov the step is g + m b (torch) or m v - lr g (Keras), not the buffer alone"),
    (ids.ADAGRAD_INITIAL_ACCUMULATOR, ("adagrad",), {"init": 0.0}, "the accumulator starting at 0",
     "Keras starts it at initial_accumulator_value = 0.1"),
    (ids.ADAGRAD_INITIAL_ACCUMULATOR, ("adagrad",), {"init": 0.1}, "the accumulator starting at 0.1",
     "torch starts it at initial_accumulator_value = 0"),
    (ids.ACCUMULATOR_PER_ROW, ("rmsprop", "adagrad", "adam"), {"row": "sum"},
     "one accumulator per row (the squares summed over the row)", "keep one accumulator per element"),
    (ids.ACCUMULATOR_PER_ROW, ("rmsprop", "adagrad", "adam"), {"row": "mean"},
     "one accumulator per row (the squares averaged over the row)", "keep one accumulator per element"),
    (ids.L2_AFTER_STEP, ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam"), {"l2_after": True},
     "L2 applied as a decay after the step", "add 2 * lambda * W to the gradient before the update rule"),
)


def _trajectory_residual(pred, got) -> float:
    return max((residual(p[k], g[k]) for p, g in zip(pred, got) for k in p), default=float("inf")) \
        if len(pred) == len(got) else float("inf")


def _first_step(got, expected_by_flavour, rtol) -> int:
    for t in range(len(got)):
        if all(any(residual(e[t][k], got[t][k]) > rtol for k in got[t]) for e in expected_by_flavour.values()):
            return t + 1
    return 1


def diagnose_optimizer(name, *, hyper, params0, grads, got, expected_by_flavour, rtol) -> list:
    """The update-rule mistakes that reproduce the user's parameters after every step, best first."""
    # Our own correct float64 rules count as references too: a mistake that changes nothing
    # here must not be claimed even where a framework rounds its constants differently.
    refs = list(expected_by_flavour.values()) + [simulate(name, hyper, params0, grads, f) for f in FLAVOURS]
    if any(_trajectory_residual(e, got) <= rtol for e in expected_by_flavour.values()):
        return []  # the user's rule matches a flavour
    quantity = f"param after step {_first_step(got, expected_by_flavour, rtol)}"
    found = {}
    with np.errstate(all="ignore"):
        for hid, names, opts, what, fix in MISTAKES:
            if name not in names or (hid == ids.L2_AFTER_STEP and not hyper.get("l2")):
                continue
            for flavour in FLAVOURS:
                pred = simulate(name, hyper, params0, grads, flavour, opts)
                if any(_trajectory_residual(e, pred) <= rtol for e in refs):
                    continue  # not a mistake for this input
                r = _trajectory_residual(pred, got)
                if r <= rtol and (hid not in found or r < found[hid].residual):
                    found[hid] = Diagnosis(hid, quantity, f"your {quantity} equals the {flavour} rule computed with "
                                           f"{what}: {fix}", r)
    return sorted(found.values(), key=lambda d: d.residual)
