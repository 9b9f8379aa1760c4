"""``xfw check FILE.py``: import a check file, run its ``check_*`` functions, print reports.

Every top-level function of FILE whose name starts with ``check_`` (defined in FILE, not
imported into it) takes no argument and returns a :class:`~experiments.check.report.Report`
or a list of them. :func:`run_file` prints them (text, or one JSON object) and returns the
exit status: 0 when all passed, 1 when one failed (a check function that raises counts as
a failed report, ``raised``), 2 on a usage error (file missing or not importable, no
``check_`` function, a check declared wrongly, a function that returns something else).

JSON (``fmt="json"``), schema 1::

    {"schema": 1,
     "reports": [{"name": "check_x",            # "check_x[i]" for the i-th report of a list
                  "passed": true,
                  "rows": [{"case": ..., "quantity": ..., "framework": ..., "max_abs": ..., "max_rel": ...,
                            "rtol": ..., "passed": ..., "off": ..., "size": ..., "index": ..., "problem": ...}],
                  "diagnoses": [{"id": "...", "quantity": "...", "text": "..."}],
                  "title": "...", "seed": 0, "notes": ["..."]}]}

Prints of the check file and of the user's code never enter the JSON: they are captured
(and shown in the text format).
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
from typing import Optional

from experiments.diagnose import Diagnosis

from .report import RAISED, Report
from .user_code import Captured, UserCodeError, call
from .user_layer import CheckUsageError

FORMATS = ("text", "json")
SCHEMA = 1


def _fail(message: str) -> int:
    print(f"xfw: error: {message}", file=sys.stderr)
    return 2


def load(path: str):
    """Import ``path`` as a module (its folder first on ``sys.path`` while it imports)."""
    if not os.path.isfile(path):
        raise CheckUsageError(f"{path}: no such file; give the path of a Python file with check_ functions")
    name = "xfw_check_" + "".join(ch if ch.isalnum() else "_" for ch in os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CheckUsageError(f"{path}: not a Python file; give a .py file with check_ functions")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)
    try:
        call(spec.loader.exec_module, module, what=f"importing {path}", captured=Captured())
    except UserCodeError as e:
        raise CheckUsageError(str(e)) from None
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)
    return module


def check_functions(module, k: Optional[str] = None) -> list:
    """``(name, function)`` of the ``check_`` functions defined in ``module``, in file order."""
    fns = [(n, f) for n, f in vars(module).items()
           if n.startswith("check_") and inspect.isfunction(f) and f.__module__ == module.__name__]
    fns.sort(key=lambda nf: nf[1].__code__.co_firstlineno)
    return [(n, f) for n, f in fns if k is None or k in n]


def _raised_report(name: str, text: str) -> Report:
    r = Report(f"{name}", seed=0)
    r.rows.append({"case": "-", "quantity": "(check function)", "framework": "-", "max_abs": None,
                   "max_rel": None, "rtol": None, "passed": False, "off": None, "size": None, "index": None,
                   "problem": text})
    r.diagnoses.append(Diagnosis(RAISED, "(check function)", text, float("nan")))
    return r


def run_one(name: str, fn) -> tuple:
    """One check function: ``([(name, report)...], [usage error lines], printed text)``.

    A wrong declaration (:class:`CheckUsageError`) stays a usage error; anything else the
    function raises is a failed report with the ``raised`` diagnosis.
    """
    captured = Captured()
    try:
        value = call(fn, what=name, captured=captured, passthrough=(CheckUsageError,))
    except CheckUsageError as e:
        return [], [f"{name}: {e}"], captured.text()
    except UserCodeError as e:
        return [(name, _raised_report(name, str(e)))], [], captured.text()
    reports = list(value) if isinstance(value, (list, tuple)) else [value]
    if not reports or not all(isinstance(r, Report) for r in reports):
        return [], [f"{name}: returned {type(value).__name__}; a check_ function returns a report "
                    "(check.layer(...), ...) or a list of reports"], captured.text()
    if isinstance(value, Report):
        return [(name, value)], [], captured.text()
    return [(f"{name}[{i}]", r) for i, r in enumerate(reports)], [], captured.text()


def run_file(path: str, *, k: Optional[str] = None, fmt: str = "text", out: Optional[str] = None) -> int:
    """Run the checks of ``path`` (``k``: only names containing it), print them in ``fmt``
    (``text`` or ``json``), save reports and pictures under ``out``; return the exit status."""
    if fmt not in FORMATS:
        return _fail(f"--format: unknown {fmt!r}; allowed: {', '.join(FORMATS)}")
    try:
        module = load(path)
    except CheckUsageError as e:
        return _fail(str(e))
    fns = check_functions(module, k)
    if not fns:
        which = f" whose name contains {k!r}" if k is not None else ""
        return _fail(f"{path}: no check_ function{which}; define functions named check_... that return "
                     "check.layer(...) reports")
    results, usage, printed = [], [], ""
    for name, fn in fns:
        res, use, text = run_one(name, fn)
        results += res
        usage += use
        printed += text
    if out is not None:
        for name, report in results:
            report.save(out, name)
    if fmt == "json":
        doc = {"schema": SCHEMA, "reports": [r.to_json(name) for name, r in results]}
        print(json.dumps(doc, indent=2))
        if out is not None:
            with open(os.path.join(out, "check.json"), "w") as f:
                json.dump(doc, f, indent=2)
    else:
        if printed:
            print("the check file printed:\n" + "".join(f"  | {ln}\n" for ln in printed.rstrip("\n").splitlines()))
        for name, report in results:
            print(f"== {name}\n{report}\n")
        failed = sum(not r.passed for _, r in results)
        print(f"{len(results)} report(s): {len(results) - failed} passed, {failed} failed")
    for line in usage:
        print(f"xfw: error: {line}", file=sys.stderr)
    if usage:
        return 2
    return 0 if all(r.passed for _, r in results) else 1
