"""The report of one check: rows (one per quantity, case and framework), diagnoses, the
teaching-grade text, the JSON object and, on request, pictures of where an error lies.

A row is a dict: ``case`` (which batch), ``quantity`` (``output``, ``input gradient``,
``kernel gradient``, ``bias gradient``, ``loss``, ``loss gradient``, ``param after step
k (key)``, ``layer i output``...), ``framework`` (the reference: ``torch`` or ``keras``),
``max_abs``, ``max_rel`` (the floored relative error of the parity suite), ``rtol`` (the
bound used), ``passed``, ``off`` (how many elements are above the bound), ``size``,
``index`` (of the worst element, canonical layout) and ``problem`` (shape, dtype or
raised text; empty when values were compared).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from experiments.parity.compare import compare as parity_compare
from experiments.parity import tolerances

from experiments.diagnose import Diagnosis

#: Ids of the diagnoses this package makes itself (bad output of the user's code).
RAISED, SHAPE, DTYPE, NON_FINITE = "raised", "shape", "dtype", "non-finite"


def off_count(expected: np.ndarray, got: np.ndarray, rtol: float) -> int:
    """How many elements are above the bound, by the parity suite's error measure
    (``|got - expected| / (|expected| + FLOOR * max|expected|)``)."""
    e, a = np.asarray(expected, np.float64), np.asarray(got, np.float64)
    floor = max(tolerances.FLOOR * np.max(np.abs(e[np.isfinite(e)]), initial=0.0), np.finfo(np.float64).tiny)
    with np.errstate(invalid="ignore", over="ignore"):
        rel = np.abs(a - e) / (np.abs(e) + floor)
    return int(np.count_nonzero(~(rel <= rtol)))


def compare_row(expected, got, *, case: str, quantity: str, framework: str, rtol: float) -> dict:
    """One row: :func:`experiments.parity.compare.compare` of the user's canonical ``got``
    with the reference ``expected`` (float64), plus the count of elements off."""
    r = parity_compare(expected, got, case=case, quantity=quantity, framework="your code",
                               dtype="float64", rtol=rtol, reference=framework)
    size = int(np.size(expected))
    off = off_count(expected, got, rtol) if not r.problem else size
    return {"case": case, "quantity": quantity, "framework": framework, "max_abs": r.max_abs,
            "max_rel": r.max_rel, "rtol": rtol, "passed": r.passed, "off": off, "size": size,
            "index": list(r.index) if r.index is not None else None, "problem": r.problem}


def problem_row(*, case: str, quantity: str, framework: str, rtol: float, problem: str) -> dict:
    """A row for a quantity that could not be compared (the user's code raised, bad shape...)."""
    nan = float("nan")
    return {"case": case, "quantity": quantity, "framework": framework, "max_abs": nan, "max_rel": nan,
            "rtol": rtol, "passed": False, "off": None, "size": None, "index": None, "problem": problem}


def non_finite(quantity: str, got: np.ndarray, expected: np.ndarray) -> Optional[Diagnosis]:
    """A ``non-finite`` diagnosis when ``got`` has NaN or inf where ``expected`` is finite."""
    bad = ~np.isfinite(got) & np.isfinite(expected)
    if not bad.any():
        return None
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    kinds = " and ".join(k for k, m in (("NaN", np.isnan(got)), ("inf", np.isinf(got))) if (m & bad).any())
    return Diagnosis(NON_FINITE, quantity,
                     f"your {quantity} has {int(bad.sum())} {kinds} value(s) where the reference is finite (first "
                     f"at index {first}); inputs of about +-1000 overflow a plain exp: subtract the maximum before "
                     f"exp (softmax) or use log-sum-exp / log1p(exp(-|z|)) (losses)", 0.0)


@dataclass
class Report:
    """The result of one check. ``passed`` is True when something was compared and every
    row passed; ``print(report)`` gives the text a student reads."""

    title: str
    seed: int
    rows: List[dict] = field(default_factory=list)
    diagnoses: list = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    cases: List[str] = field(default_factory=list)
    printed: str = ""
    warned: List[str] = field(default_factory=list)
    #: quantity -> (got, expected), canonical images of failing quantities, for :meth:`save`.
    images: dict = field(default_factory=dict, repr=False)
    #: Lines printed under the title (optimizers: which flavour matches, networks: the first
    #: layer that disagrees).
    summary: List[str] = field(default_factory=list)
    #: Passed when every row of one framework (flavour) passed, not of all of them.
    any_framework: bool = False
    #: Indices of the rows the text shows (None: all); the JSON always has every row.
    shown: Optional[List[int]] = None
    #: Layouts the user left out and xfw inferred (``{"output_layout": "n h w c"}``).
    conventions: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        if not self.rows:
            return False
        if self.any_framework:
            fws = dict.fromkeys(r["framework"] for r in self.rows)
            return any(all(r["passed"] for r in self.rows if r["framework"] == fw) for fw in fws)
        return all(r["passed"] for r in self.rows)

    def add_diagnosis(self, d) -> None:
        if all((d.id, d.quantity) != (o.id, o.quantity) for o in self.diagnoses):
            self.diagnoses.append(d)

    # ------------------------------------------------------------------ text
    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"{self.title}: {verdict}", f"  seed {self.seed}; cases: {'; '.join(self.cases) or '-'}"]
        lines += [f"  {s}" for s in self.summary]
        if self.diagnoses:  # first, before the numbers: what the mistake is and how to fix it
            lines.append("  diagnosis (the mistake that reproduces your numbers, best first; [id] quantity: "
                         "what and the fix):" if any(d.id != "convention" for d in self.diagnoses)
                         else "  diagnosis:")
            lines += [f"    [{d.id}] {d.quantity}: {d.text}" for d in self.diagnoses]
        rows = self.rows if self.shown is None else [self.rows[i] for i in self.shown]
        wc = max([len("case")] + [len(r["case"]) for r in rows])
        wq = max([len("quantity")] + [len(r["quantity"]) for r in rows])
        if self.shown is not None and len(rows) < len(self.rows):
            lines.append(f"  ({len(rows)} of {len(self.rows)} rows shown: every row is in the JSON)")
        if rows:
            lines.append(f"  {'case':<{wc}} {'quantity':<{wq}} {'vs':<6} {'max abs':>9} {'max rel':>9} "
                         f"{'bound':>7} {'off':>9}  worst at")
        for r in rows:
            head = f"  {r['case']:<{wc}} {r['quantity']:<{wq}} {r['framework']:<6}"
            if r["problem"]:
                lines.append(f"{head} NOT COMPARED: {r['problem']}")
                continue
            off = f"{r['off']}/{r['size']}"
            where = str(tuple(r["index"])) if r["index"] is not None and not r["passed"] else "-"
            mark = "ok" if r["passed"] else "WRONG"
            lines.append(f"{head} {r['max_abs']:9.2e} {r['max_rel']:9.2e} {r['rtol']:7.0e} {off:>9}  "
                         f"{where} {mark}")
        lines += [f"  note: {n}" for n in self.notes]
        if self.printed:
            lines.append("  your code printed:")
            lines += [f"    | {ln}" for ln in self.printed.rstrip("\n").splitlines()[:40]]
        if self.warned:
            lines.append("  your code warned:")
            lines += [f"    {w}" for w in dict.fromkeys(self.warned)][:10]
        return "\n".join(lines)

    # ------------------------------------------------------------------ json
    def to_json(self, name: Optional[str] = None) -> dict:
        """The report as JSON-ready data (schema 1 of ``xfw check --format json``)."""
        def num(v):
            return v if v is None or (isinstance(v, float) and np.isfinite(v)) or not isinstance(v, float) else None

        out = {"name": name or self.title, "passed": self.passed,
               "rows": [{k: num(v) for k, v in r.items()} for r in self.rows],
               "diagnoses": [{"id": d.id, "quantity": d.quantity, "text": d.text} for d in self.diagnoses],
               "title": self.title, "seed": self.seed, "summary": list(self.summary), "notes": list(self.notes),
               "conventions": dict(self.conventions)}
        return out

    # ------------------------------------------------------------------ files
    def save(self, out_dir: str, name: str) -> List[str]:
        """Write ``NAME.json`` and, per failing image-shaped quantity, ``NAME-<quantity>.png``
        (where the absolute error lies, summed over samples and channels); returns the paths."""
        os.makedirs(out_dir, exist_ok=True)
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        paths = [os.path.join(out_dir, f"{safe}.json")]
        with open(paths[0], "w") as f:
            json.dump(self.to_json(name), f, indent=2)
        for quantity, (got, expected) in self.images.items():
            paths.append(self._picture(os.path.join(out_dir, f"{safe}-{quantity.replace(' ', '_')}.png"),
                                       quantity, got, expected))
        return paths

    def _picture(self, path, quantity, got, expected) -> str:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        err = np.abs(np.nan_to_num(got, nan=np.inf) - expected)
        err = np.where(np.isfinite(err), err, np.nanmax(np.where(np.isfinite(err), err, np.nan), initial=0) * 2)
        fig, axes = plt.subplots(1, 3, figsize=(9, 3))
        for ax, img, title in zip(axes, (expected.sum(axis=(0, 1)), got.sum(axis=(0, 1)), err.sum(axis=(0, 1))),
                                  ("reference (sum over n, c)", "yours", "|error| (sum over n, c)")):
            im = ax.imshow(img, cmap="magma" if title.startswith("|") else "coolwarm")
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("w")
            ax.set_ylabel("h")
            fig.colorbar(im, ax=ax, fraction=0.046)
        fig.suptitle(f"{self.title}: {quantity}", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path
