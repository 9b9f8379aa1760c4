"""The one atomic write of the suite: results files never end up half written.

A file is written whole to a temporary file in the same folder, flushed, fsync'd and
moved over the old one with ``os.replace``, so a killed process leaves either the old
file or the new one. Text goes through :func:`atomic_write`; anything another library
writes itself (a matplotlib figure, a pandas CSV) through :func:`atomic_write_with`.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable


def atomic_write_with(path, write: Callable[[str], None]) -> str:
    """Call ``write(tmp_path)`` to fill a temporary file beside ``path``, fsync it, then
    move it onto ``path``. Returns ``path`` as a string. The temporary file keeps the
    suffix of ``path`` (matplotlib and pandas choose their format from it)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    base, suffix = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write(path, text: str) -> str:
    """Replace ``path`` by ``text`` (UTF-8, newlines as given) atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return atomic_write_with(path, write)
