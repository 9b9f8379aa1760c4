"""The diagnosis record and the one matching rule every hypothesis goes through.

A hypothesis is a :class:`Candidate`: an id, the user's array as that mistake would
produce it (``pred``, canonical float64, the failing quantity's shape), and the words
for the report. :func:`match` keeps the candidates that reproduce the user's numbers:

* a candidate whose prediction equals the reference within the bound is skipped: on
  this input the mistake is invisible (a flipped kernel that is symmetric), so claiming
  it would blame correct code;
* a single mistake matches when compare's floored relative error (``max_rel`` of
  :func:`experiments.parity.compare.compare`, with the prediction as the expected side)
  is within ``rtol``;
* a pair matches when the candidate times a least-squares constant ``a = <p, g>/<p, p>``
  does; it is reported as two diagnoses, the mistake first, then ``scale``, both with
  the pair's residual;
* matches are ranked by residual, singles before pairs; a later candidate that predicts
  the same numbers as an earlier match (a planted breakage that is a generic mistake on
  this input) is dropped, so generic hypotheses must come first.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Optional

import numpy as np

from experiments.parity.compare import compare

from . import ids

#: A fitted factor this close to 1 is an epsilon (a tiny constant), not a scale.
EPSILON_FACTOR = 1e-4
#: A fitted additive constant counts as an epsilon when it is this small next to max|reference|.
EPSILON_OFFSET = 1e-3
#: Relative agreement needed to name a fitted factor (N, 1/kh, ...).
NAME_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Diagnosis:
    """One named mistake that reproduces the user's numbers of ``quantity``.

    ``residual``: compare's floored relative error left under the hypothesis;
    ``factor``: the fitted constant of ``scale`` (and of a mistake paired with it).
    """

    id: str
    quantity: str
    text: str
    residual: float
    factor: Optional[float] = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """A hypothesis: ``pred`` is the quantity as the mistake computes it.

    ``what`` completes "your <quantity> equals the reference computed with ...";
    ``fix`` says why and what to change. ``pair``: also try it times a fitted constant.
    """

    id: str
    what: str
    fix: str
    pred: np.ndarray
    pair: bool = True

    def text(self, quantity: str) -> str:
        return f"your {quantity} equals the reference computed with {self.what}: {self.fix}"


def residual(pred: np.ndarray, got: np.ndarray) -> float:
    """compare's floored relative error of ``got`` against ``pred`` (inf when shapes differ)."""
    pred = np.asarray(pred, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if pred.shape != got.shape:
        return float("inf")
    r = compare(pred, got, case="diagnose", quantity="diagnose", framework="user", rtol=1.0).max_rel
    return float(r) if r == r else float("inf")


def fit_scale(pred: np.ndarray, got: np.ndarray) -> Optional[float]:
    """Least-squares ``a`` minimising ``|a * pred - got|``; None when ``pred`` is zero or not finite."""
    p, g = pred.ravel(), got.ravel()
    den = float(p @ p)
    if not np.isfinite(den) or den == 0.0 or not np.all(np.isfinite(g)):
        return None
    a = float(p @ g) / den
    return a if np.isfinite(a) and a != 0.0 else None


def named_factors(sizes: dict) -> list:
    """(value, name) pairs a fitted factor may be: each size, its inverse, products of two, 2, 1/2, -1."""
    base = [(v, k) for k, v in sizes.items() if v and v != 1]
    out = [(2.0, "2"), (0.5, "1/2"), (-1.0, "-1 (the sign is flipped)")]
    for i, (v, k) in enumerate(base):
        out += [(float(v), f"{k} = {v}"), (1.0 / v, f"1/{k} = 1/{v}")]
        for w, m in base[i + 1:]:
            out += [(float(v * w), f"{k}*{m} = {v * w}"), (1.0 / (v * w), f"1/({k}*{m}) = 1/{v * w}")]
    return out


def name_factor(a: float, sizes: dict) -> Optional[str]:
    """Every name ``a`` may be ("1/N = 1/3 or 1/kh = 1/3" when N and kh are both 3), or None."""
    names = [name for value, name in named_factors(sizes) if abs(a - value) <= NAME_TOLERANCE * abs(value)]
    return " or ".join(dict.fromkeys(names)) or None


def scale_text(quantity: str, a: float, sizes: dict) -> str:
    name = name_factor(a, sizes)
    head = f"your {quantity} is the reference times {a:.6g}"
    if name is None:
        return f"{head}: a constant factor the reference does not have - look for a stray constant in your formula"
    if a < 0:
        return f"{head}, {name}: you add where you should subtract (or the reverse) - flip the sign"
    if abs(a) < 1:
        return (f"{head}, {name}: you divide by {name.split(' = ')[0][2:]} where the reference does not "
                "(a mean where a sum belongs, or a normalisation twice) - remove that division")
    return (f"{head}, {name}: you multiply by {name.split(' = ')[0]} where the reference does not "
            "(a sum where a mean belongs, or a factor counted twice) - remove that factor")


def _epsilon(quantity, got, expected, rtol):
    """An additive constant small next to the reference, or a factor within EPSILON_FACTOR of 1."""
    top = float(np.max(np.abs(expected), initial=0.0))
    c = float(np.mean(got - expected))
    if top > 0 and 0 < abs(c) <= EPSILON_OFFSET * top:
        r = residual(expected + c, got)
        if r <= rtol:
            return Diagnosis(ids.EPSILON, quantity,
                             f"your {quantity} is the reference plus {c:.3g} everywhere: a small constant "
                             "(an epsilon) is added where the reference has none - remove it", r)
    a = fit_scale(expected, got)
    if a is not None and 0 < abs(a - 1) <= EPSILON_FACTOR:
        r = residual(a * expected, got)
        if r <= rtol:
            return Diagnosis(ids.EPSILON, quantity,
                             f"your {quantity} is the reference times {a:.9g}: a small constant (an epsilon) "
                             "enters a denominator or a factor where the reference has none - remove it", r, a)
    return None


def non_finite(quantity, got, expected) -> Optional[Diagnosis]:
    bad = ~np.isfinite(got) & np.isfinite(expected)
    if not bad.any():
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    return Diagnosis(ids.NON_FINITE, quantity,
                     f"your {quantity} has {int(bad.sum())} NaN or inf values where the reference is finite "
                     f"(first at index {first}): an exp that overflows, a log of 0 or a division by 0 - "
                     "shift by the maximum before exp, and keep logs and denominators away from 0",
                     float("inf"))


def match(candidates: Iterable[Candidate], *, quantity: str, got, expected, rtol: float,
          sizes: dict) -> list:
    """The diagnoses that reproduce ``got``; see the module docstring for the rules."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return []
    nf = non_finite(quantity, got, expected)
    if nf is not None:
        return [nf]
    if residual(expected, got) <= rtol:
        return []  # correct numbers: nothing to name
    singles, pairs, seen = [], [], []
    eps = _epsilon(quantity, got, expected, rtol)
    if eps is not None:
        singles.append((eps.residual, [eps]))
    a = fit_scale(expected, got)
    if eps is None and a is not None and abs(a - 1) > EPSILON_FACTOR:
        r = residual(a * expected, got)
        if r <= rtol:
            singles.append((r, [Diagnosis(ids.SCALE, quantity, scale_text(quantity, a, sizes), r, a)]))
    for cand in candidates:
        pred = np.asarray(cand.pred, dtype=np.float64)
        if pred.shape != got.shape or not np.all(np.isfinite(pred)):
            continue
        if residual(expected, pred) <= rtol:
            continue  # this mistake changes nothing on this input
        if any(residual(p, pred) <= rtol for p in seen):
            continue  # an earlier (more generic) hypothesis already predicts these numbers
        r = residual(pred, got)
        if r <= rtol:
            seen.append(pred)
            singles.append((r, [Diagnosis(cand.id, quantity, cand.text(quantity), r)]))
            continue
        if not cand.pair:
            continue
        b = fit_scale(pred, got)
        if b is None or abs(b - 1) <= EPSILON_FACTOR:
            continue
        r = residual(b * pred, got)
        if r <= rtol:
            seen.append(pred)
            pairs.append((r, [Diagnosis(cand.id, quantity, cand.text(quantity) + " (together with a constant "
                                        "factor, next line)", r, b),
                              Diagnosis(ids.SCALE, quantity, scale_text(quantity, b, sizes), r, b)]))
    out, used = [], set()
    for _, group in sorted(singles, key=lambda t: t[0]) + sorted(pairs, key=lambda t: t[0]):
        key = tuple(d.id for d in group)
        if key in used:
            continue
        used.add(key)
        out.extend(group)
    return out
