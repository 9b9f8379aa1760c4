"""argparse helpers shared by every command: the parser and number types.

:class:`Parser` is the parser of ``xfw`` and, through ``add_subparsers``, of every
command: its errors are one line ``xfw: error: ...`` (no usage block), exit status 2; a
list option (``nargs="+"``) given twice accumulates (``--eta 0.1 --eta 0.2`` is both
values), any other option given twice is refused rather than silently overwritten.
"""
from __future__ import annotations

import argparse
import math


class _Once(argparse.Action):
    """``store``, refusing a second occurrence of the option."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = getattr(namespace, "_xfw_seen", set())
        if self.dest in seen:
            parser.error(f"argument {option_string}: given twice (the second time {values!r}); give it once")
        namespace._xfw_seen = seen | {self.dest}
        setattr(namespace, self.dest, values)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"xfw: error: {message}\n")

    def add_argument(self, *args, **kwargs):
        if args and args[0].startswith("-") and kwargs.get("action") in (None, "store"):
            kwargs["action"] = "extend" if kwargs.get("nargs") in ("+", "*") else _Once
        return super().add_argument(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        vars(parsed).pop("_xfw_seen", None)
        return parsed


def _number(kind, minimum: float, strict: bool):
    """An argparse type: a ``kind`` (int or float) above ``minimum`` (``strict``) or at least it."""
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    noun = "a finite number" if kind is float else "an integer"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'a number' if kind is float else 'an integer'}") from None
        if (kind is float and not math.isfinite(value)) or (value <= minimum if strict else value < minimum):
            raise argparse.ArgumentTypeError(f"{text} must be {noun} {bound}")
        return value
    return parse


positive_float = _number(float, 0, strict=True)
non_negative_float = _number(float, 0, strict=False)
positive_int = _number(int, 0, strict=True)
non_negative_int = _number(int, 0, strict=False)
