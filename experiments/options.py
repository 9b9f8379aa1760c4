"""One check per user-facing choice, shared by every command and by :class:`GridConfig`.

Each function takes the value as the user gave it and the option (or field) that set
it, and returns the checked value or raises :class:`~experiments.errors.UsageError`
with one line ``<option>: unknown <what> <value>; allowed: <choices>``. So a bad
``--arch`` reads the same from ``xfw train``, ``xfw grid``, ``xfw parity`` and a TOML
file.
"""
from __future__ import annotations

from scratch.checks import DTYPE_NAMES as DTYPES

from .errors import UsageError

#: The three engines, in the order every table lists them.
FRAMEWORKS = ("scratch", "keras", "torch")


def split_list(values):
    """Several values or comma-separated ones (``--eta 0.1 0.01`` = ``--eta 0.1,0.01``):
    one flat list of stripped strings; None stays None."""
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    return [v.strip() for text in values for v in str(text).split(",") if v.strip()]


def choice(option: str, value, allowed, what: str, hint: str = ""):
    """``value`` if it is one of ``allowed``; else a UsageError naming ``option``."""
    if value not in allowed:
        raise UsageError(f"{option}: unknown {what} {value!r}{hint}; allowed: {', '.join(map(str, allowed))}")
    return value


def choices(option: str, values, allowed, what: str, *, hints=None) -> tuple:
    """A list option (None: every allowed value), each checked, no repeats, order kept."""
    values = split_list(values)
    if values is None:
        return tuple(allowed)
    if not values:
        raise UsageError(f"{option}: the list is empty; allowed: {', '.join(allowed)}")
    for v in values:
        choice(option, v, allowed, what, (hints or {}).get(v, ""))
    if len(set(values)) != len(values):
        raise UsageError(f"{option}: {', '.join(values)} names a {what} twice")
    return tuple(values)


def arch(value, option: str = "--arch") -> str:
    from scratch import architectures

    return choice(option, value, architectures.names(), "architecture")


def dataset(value, option: str = "--dataset") -> str:
    from .datasets import DATASETS

    return choice(option, value, DATASETS, "data set")


def optimizer(value, option: str = "--optimizer") -> str:
    from scratch.optimizers import OPTIMIZERS

    return choice(option, value, OPTIMIZERS, "optimizer")


def dtype(value, option: str = "--dtype") -> str:
    return choice(option, value, DTYPES, "dtype")


def input_shape(value, option: str = "--input-shape") -> tuple:
    """A (C, H, W) sample shape of three positive ints, from a tuple or list or the text
    ``"C,H,W"`` (also ``CxHxW``)."""
    text = value
    if isinstance(value, str):
        value = [v for v in value.replace("x", ",").split(",") if v.strip()]
    try:
        shape = tuple(int(v) for v in value)
        ok = len(shape) == 3 and all(v > 0 for v in shape) and not any(isinstance(v, (bool, float)) for v in value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"{option}: {text!r} is not a sample shape; expected C,H,W, three positive integers "
                         "(e.g. 1,28,28)")
    return shape


def frameworks(values, option: str = "--frameworks", allowed=None) -> tuple:
    """Framework names (``allowed`` defaults to every framework)."""
    allowed = FRAMEWORKS if allowed is None else allowed
    hints = {} if "scratch" in allowed else {
        "scratch": " (scratch is the reference every framework is compared with)"}
    return choices(option, values, allowed, "framework", hints=hints)
