"""The ``xfw`` command line: ``train``, ``grid``, ``heatmap``, ``parity``, ``check`` and ``bench``.

Each command lives in its own module of this package and registers its parser here.
Every option is checked before any training starts; a bad value prints one line
``xfw: error: <option>: <what is wrong and what is allowed>`` and exits with status 2.
"""
from __future__ import annotations

import sys

from ..errors import UsageError
from . import bench, check, grid, parity, train
from .args import Parser

COMMANDS = (train, grid, parity, check, bench)


def build_parser() -> Parser:
    parser = Parser(prog="xfw", description="The same networks in NumPy, Keras and PyTorch: train, compare, "
                                            "grid-search.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("xfw: interrupted; finished results are kept", file=sys.stderr)
        return 130
    except (UsageError, ValueError, KeyError, TypeError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"xfw: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2
    except OSError as e:  # a file or folder the command could not read or write
        where = f"{e.filename}: " if e.filename else ""
        print(f"xfw: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
