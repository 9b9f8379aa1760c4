"""Calling the user's code safely: its prints captured, its warnings recorded, its
exceptions turned into one line, and copies of whatever its getters return.

Nothing the user's code does escapes as a traceback: :func:`call` raises
:class:`UserCodeError` (one line: what was called, the exception, the file and line of
the user's code where it happened), which the checks turn into a failed report.
"""
from __future__ import annotations

import contextlib
import io
import os
import traceback
import warnings
from dataclasses import dataclass, field
from typing import List

import numpy as np


class UserCodeError(Exception):
    """The user's code raised; ``str(e)`` is one line naming what raised and where."""


@dataclass
class Captured:
    """What the user's code printed and warned while it ran, in order."""

    printed: List[str] = field(default_factory=list)
    warned: List[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.printed)


def _where(tb) -> str:
    """``file.py:12 in forward`` for the innermost frame outside this package (the user's code)."""
    frames = [f for f in traceback.extract_tb(tb) if os.path.dirname(f.filename) != os.path.dirname(__file__)]
    if not frames:
        return ""
    f = frames[-1]
    return f" at {os.path.basename(f.filename)}:{f.lineno} in {f.name}"


def call(fn, *args, what: str, captured: Captured, passthrough: tuple = ()):
    """``fn(*args)`` with stdout/stderr captured into ``captured`` and warnings recorded there.

    Warnings are recorded, never raised: xfw's own filter replaces the caller's for the
    duration, so a NumPy overflow warning in the user's code neither stops the check nor
    prints into ``--format json`` output (it shows in the text report). Exceptions of the
    types in ``passthrough`` (xfw's own usage errors, raised inside a check function) are
    re-raised unchanged.
    """
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return fn(*args)
            finally:
                captured.warned.extend(f"{what}: {w.category.__name__}: {w.message}" for w in caught)
    except passthrough:
        raise
    except (Exception, SystemExit) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserCodeError(f"{what} raised {type(e).__name__}{': ' + message if message else ''}"
                            f"{_where(e.__traceback__)}") from None
    finally:
        if buf.getvalue():
            captured.printed.append(buf.getvalue())


def read(getter, *, what: str, captured: Captured) -> np.ndarray:
    """Call a getter and return a private copy of the NumPy array it returns.

    A copy, because code that updates its weights in place must not change what xfw has
    already read. Raises :class:`UserCodeError` when the getter raises and ``TypeError``
    (message naming ``what``) when it returns something other than a NumPy array.
    """
    value = call(getter, what=what, captured=captured)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{what} returned {type(value).__name__}, not a NumPy array")
    return np.array(value, copy=True)
