"""``xfw parity``: the parity matrix outside pytest.

Usage::

    xfw parity [--parts layers,losses,models,optimizers] [--arch NAME,...] [--layers KIND,...]
               [--dtype float64,float32] [--frameworks torch,keras]
               [--format table|json|markdown] [--out DIR] [--name NAME] [--failures-only]

Each option filters its own part of the matrix (:mod:`experiments.parity`):
``--layers`` the layer cases (kinds ``conv, maxpool, avgpool, dense, flatten, activation,
dropout``), ``--arch`` the model parity and the optimizer trajectories (which run on the
first architecture named, default ``course_cnn``, in float64 only), ``--dtype`` every part,
``--frameworks`` who is compared with scratch. List options take one comma-separated value
or several values. Defaults: everything.

It prints the result table (case, quantity, framework, max abs error, max rel error, bound,
pass; the framework column reads ``keras vs torch`` for the model rows that compare the two
frameworks layer by layer without scratch; ``--failures-only`` prints only the failing rows), writes the whole report in the
chosen format to ``DIR/NAME.{txt,json,md}`` (default ``results/parity/parity-<UTC time>``)
and exits with status 0 when every comparison passed, 1 when one failed (or when nothing
could be compared because every framework was skipped), 2 on a bad option (one line naming
the option and the valid choices). A framework that is not installed is listed as skipped,
by name, and none of its rows appear: it is never reported as passed.

JSON format (``--format json``), schema 1, stable: one object ::

    {
      "schema": 1,
      "created": "2025-01-31T12:00:00Z",          # UTC, ISO 8601
      "parts": ["layers", "losses", "models", "optimizers"],
      "dtypes": ["float64", "float32"],
      "frameworks": ["torch", "keras"],             # requested
      "archs": ["course_cnn", ...], "layers": ["conv", ...],
      "skipped": [{"framework": "keras", "reason": "the package 'tensorflow' is not installed"}],
      "results": [
        {"case": "conv-k2x3-s2-same-c3-b1-9x7-float64",  # readable case id
         "quantity": "kernel gradient",                 # output, input gradient, kernel gradient,
                                                        # bias gradient, data loss, L2 penalty,
                                                        # objective, loss gradient (logits|outputs),
                                                        # <i>.kernel gradient, layer i (Kind) output,
                                                        # param after step k (<i>.kernel), ...
         "framework": "torch",
         "reference": "scratch",                         # what it is compared with: "scratch", or
                                                        # "torch" for the Keras-vs-torch layer rows
         "max_abs": 1.2e-15, "max_rel": 3.4e-14,         # null when not compared (shape/dtype problem)
         "index": [1, 2, 0, 0],                          # where max_rel is largest (null if none)
         "rtol": 1e-10,                                  # the bound max_rel is held to
         "passed": true,
         "problem": "",                                  # shape or dtype mismatch text
         "layer": null}                                  # spec entry, when the quantity has one
      ],
      "counts": {"compared": 1234, "failed": 0},
      "passed": true                                     # compared > 0 and failed == 0
    }

Errors are relative to ``|expected| + 1e-3 * max|expected|`` (scratch is "expected"); see
:mod:`experiments.parity.tolerances` for the bounds and their anchors.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sys

from .. import options
from ..errors import UsageError
from ..files import atomic_write

FORMATS = ("table", "json", "markdown")
EXTENSIONS = {"table": "txt", "json": "json", "markdown": "md"}
SCHEMA = 1


def register(sub) -> None:
    from experiments.parity import cases, runner
    from scratch import architectures

    p = sub.add_parser(
        "parity", help="scratch against Keras and PyTorch: outputs, gradients, losses, optimizer steps",
        description="Run the parity matrix outside pytest, print the table, write it under results/parity/ "
                    "and exit 1 if any comparison fails.")
    p.add_argument("--parts", nargs="+", metavar="PART", help=f"any of {', '.join(runner.PARTS)} (default all)")
    p.add_argument("--arch", nargs="+", metavar="NAME",
                   help=f"architectures: {', '.join(architectures.names())} (default all)")
    p.add_argument("--layers", nargs="+", metavar="KIND", help=f"layer kinds: {', '.join(cases.LAYER_KINDS)} "
                                                                "(default all)")
    p.add_argument("--dtype", nargs="+", metavar="DTYPE", help="float64, float32 (default both)")
    p.add_argument("--frameworks", nargs="+", metavar="NAME",
                   help=f"compared with scratch: {', '.join(runner.FRAMEWORKS)} (default both)")
    p.add_argument("--format", default="table", help=f"{', '.join(FORMATS)} (default table)")
    p.add_argument("--out", metavar="DIR", default=os.path.join("results", "parity"),
                   help="folder for the report (default results/parity)")
    p.add_argument("--name", help="report file name without extension (default parity-<UTC time>)")
    p.add_argument("--failures-only", action="store_true", help="print only failing rows (the file has all)")
    p.set_defaults(func=cmd_parity)


def parse_options(args) -> dict:
    from experiments.parity import cases, runner
    from scratch import architectures

    opts = {
        "parts": options.choices("--parts", args.parts, runner.PARTS, "part"),
        "archs": options.choices("--arch", args.arch, architectures.names(), "architecture"),
        "kinds": options.choices("--layers", args.layers, cases.LAYER_KINDS, "layer kind"),
        "dtypes": cases.DTYPES if args.dtype is None else options.choices("--dtype", args.dtype, options.DTYPES,
                                                                            "dtype"),
        "frameworks": options.frameworks(args.frameworks, allowed=runner.FRAMEWORKS),
    }
    if opts["parts"] == ("optimizers",) and "float64" not in opts["dtypes"]:
        raise UsageError("--dtype: the optimizer trajectories run in float64 only; add float64 or another --parts")
    if args.format not in FORMATS:
        options.choice("--format", args.format, FORMATS, "format")
    if args.name is not None and (not args.name or os.sep in args.name or args.name in (".", "..")):
        raise UsageError(f"--name: {args.name!r} is not a file name")
    return opts


# --------------------------------------------------------------------------- rendering
def _num(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


ROW_KEYS = ("case", "quantity", "framework", "reference", "max_abs", "max_rel", "index", "rtol", "passed", "problem",
            "layer")


def to_json(report, opts, created: str) -> dict:
    rows = []
    for r in report.results:
        d = r.as_dict()
        d["max_abs"], d["max_rel"] = _num(d["max_abs"]), _num(d["max_rel"])
        rows.append({k: d[k] for k in ROW_KEYS})
    failed = len(report.failures)
    return {
        "schema": SCHEMA,
        "created": created,
        "parts": list(opts["parts"]),
        "dtypes": list(opts["dtypes"]),
        "frameworks": list(opts["frameworks"]),
        "archs": list(opts["archs"]),
        "layers": list(opts["kinds"]),
        "skipped": [{"framework": k, "reason": v} for k, v in report.skipped.items()],
        "results": rows,
        "counts": {"compared": len(rows), "failed": failed},
        "passed": report.passed,
    }


_HEAD = ("case", "quantity", "framework", "max abs error", "max rel error", "bound", "pass")


def _cells(r):
    def e(v):
        return "-" if v is None or not math.isfinite(v) else f"{v:.3e}"

    verdict = "ok" if r.passed else ("FAIL: " + r.problem if r.problem else "FAIL")
    who = r.framework if r.reference == "scratch" else f"{r.framework} vs {r.reference}"
    return (r.case, r.quantity, who, e(r.max_abs), e(r.max_rel), f"{r.rtol:.0e}", verdict)


def summary(report) -> str:
    n, f = len(report.results), len(report.failures)
    parts = [f"parity: {n} comparisons, {f} failed"]
    for fw, reason in report.skipped.items():
        parts.append(f"{fw} SKIPPED ({reason})")
    if not report.results:
        parts.append("nothing was compared")
    parts.append("PASSED" if report.passed else "FAILED")
    return "; ".join(parts)


def to_table(report, failures_only=False) -> str:
    rows = [_cells(r) for r in report.results if not (failures_only and r.passed)]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(_HEAD)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [line(_HEAD), line(["-" * w for w in widths])] + [line(row) for row in rows]
    out += [f"{fw}: SKIPPED, {reason}; no {fw} comparison was run" for fw, reason in report.skipped.items()]
    out.append(summary(report))
    return "\n".join(out) + "\n"


def to_markdown(report, failures_only=False) -> str:
    rows = [_cells(r) for r in report.results if not (failures_only and r.passed)]
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(_HEAD) + " |", "|" + "---|" * len(_HEAD)]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    if report.skipped:
        out.append("")
        out += [f"- **{fw}: skipped**, {reason}" for fw, reason in report.skipped.items()]
    out += ["", f"**{summary(report)}**"]
    return "\n".join(out) + "\n"


def render(report, opts, fmt: str, created: str, failures_only=False) -> str:
    if fmt == "json":
        return json.dumps(to_json(report, opts, created), indent=1) + "\n"
    if fmt == "markdown":
        return to_markdown(report, failures_only)
    return to_table(report, failures_only)


# --------------------------------------------------------------------------- command
def cmd_parity(args) -> int:
    opts = parse_options(args)
    from experiments.parity import runner

    now = _dt.datetime.now(_dt.timezone.utc)
    created = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    name = args.name or f"parity-{now.strftime('%Y%m%d-%H%M%S')}"
    report = runner.run(opts["parts"], archs=opts["archs"], kinds=opts["kinds"], dtypes=opts["dtypes"],
                        frameworks=opts["frameworks"])
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{name}.{EXTENSIONS[args.format]}")
    text = render(report, opts, args.format, created)
    atomic_write(path, text)
    if args.format == "json":
        sys.stdout.write(text)
        print(f"{summary(report)}; written to {path}", file=sys.stderr)
    else:
        sys.stdout.write(render(report, opts, args.format, created, args.failures_only) if args.failures_only
                         else text)
        print(f"written to {path}")
    return 0 if report.passed else 1
