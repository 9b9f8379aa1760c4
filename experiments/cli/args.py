"""argparse helpers shared by every command: number types and one-line errors."""
from __future__ import annotations

import argparse
import math


def one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """argparse errors as one line ``xfw: error: ...`` (no usage block), exit status 2."""
    def error(message):
        parser.exit(2, f"xfw: error: {message}\n")

    parser.error = error
    return parser


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
