"""``xfw check FILE.py [-k SUBSTRING] [--format text|json] [--out DIR]``: run the ``check_`` functions of a file of checks of your own
NumPy code. Exit status 0 when every report passed, 1 when one failed, 2 on a usage error.
The logic and the JSON schema are :func:`experiments.check.files.run_file`.
"""
from __future__ import annotations



def register(sub) -> None:
    from experiments.check.files import FORMATS

    p = sub.add_parser(
        "check", help="check your own NumPy layers, losses, optimizers and networks against PyTorch and Keras",
        description="Import FILE and call every top-level function whose name starts with check_; each returns "
                    "a report (experiments.check.layer(...), ...) or a list of them. Exit 0 when all passed, "
                    "1 when one failed, 2 on a usage error.")
    p.add_argument("file", metavar="FILE.py", help="a Python file with check_ functions")
    p.add_argument("-k", metavar="SUBSTRING", default=None, help="run only check_ functions whose name contains it")
    p.add_argument("--format", choices=FORMATS, default="text", help="text (default) or json (schema 1)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write each report's JSON and pictures of where an image-shaped error lies")
    p.set_defaults(func=run)


def run(args) -> int:
    from experiments.check.files import run_file

    return run_file(args.file, k=args.k, fmt=args.format, out=args.out)
