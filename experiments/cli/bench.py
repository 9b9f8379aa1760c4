"""``xfw bench``: speed of every framework, measured side by side in one run."""
from __future__ import annotations

from .. import options
from .args import positive_int


def register(sub) -> None:
    p = sub.add_parser("bench", help="seconds per epoch of each framework, side by side in one run")
    p.add_argument("--frameworks", nargs="+", metavar="NAME", default=None,
                   help="any of scratch, keras, torch (default all installed)")
    p.add_argument("--epochs", type=positive_int, default=3, help="timed epochs per case; the median is shown "
                                                                  "(default 3)")
    p.add_argument("--no-loop", action="store_true", help="skip the nested-loop baseline")
    p.add_argument("--no-28", action="store_true", help="skip the 28x28 synthetic table")
    p.add_argument("--grid", action="store_true", help="time the full default grid against the course's way")
    p.add_argument("--lenet", action="store_true",
                   help="time the lenet grid on 28x28 synthetic data, population against process executor")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from ..bench import epochs

    args.frameworks = options.frameworks(args.frameworks)
    return epochs.main(args)
