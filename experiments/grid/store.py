"""The results of grid runs on disk, one folder per run: the only reader and writer.

Everything else (the runner, the tables, the figures, the report) goes through this module.

``<out>/<run>/``::

    manifest.json   the whole config, its identity hash, versions, git commit, machine,
                    start/end times and status ("running" | "finished" | "interrupted")
    cells.csv       one row per finished cell (CELL_COLUMNS), the source of truth
    curves.csv      one row per epoch of every cell in cells.csv (CURVE_COLUMNS), tidy
    figures/        heatmaps (experiments.grid.figures)
    report.md       the run's report (experiments.grid.report)

Writes are atomic: each file is written whole to a temporary file in the same folder,
flushed, fsync'd and moved over the old one with ``os.replace``, so a killed process
leaves either the old file or the new one, never half a row. ``curves.csv`` is written
before ``cells.csv``; a cell counts as done only once it is in ``cells.csv``, and
curve rows of cells that are not there (a kill between the two writes) are dropped when
the run is opened again. Only the parent process of a run writes.

Floats are written with ``repr``, so every value (eta and lambda included) reads back
bit for bit; NaN and infinities are written ``nan``, ``inf``, ``-inf``. Empty fields
mean "none" (``diverged_epoch`` unless diverged, ``error`` unless failed).
"""
from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import platform
import socket
import subprocess
import sys

from ..files import atomic_write

CELL_COLUMNS = ("framework", "eta", "lmbda", "seed", "epochs", "train_loss", "train_accuracy", "test_loss",
                "test_accuracy", "status", "diverged_epoch", "seconds", "error")
CURVE_COLUMNS = ("framework", "eta", "lmbda", "seed", "epoch", "loss", "train_loss", "train_accuracy", "test_loss",
                 "test_accuracy")
KEY_COLUMNS = ("framework", "eta", "lmbda", "seed")
STATUSES = ("ok", "diverged", "failed")
DONE_STATUSES = ("ok", "diverged")  # a rerun skips these and reruns "failed" cells
MANIFEST, CELLS, CURVES = "manifest.json", "cells.csv", "curves.csv"

_FLOAT_CELL = {"eta", "lmbda", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"}
_INT_CELL = {"seed", "epochs", "diverged_epoch"}
_FLOAT_CURVE = {"eta", "lmbda", "loss", "train_loss", "train_accuracy", "test_loss", "test_accuracy"}
_INT_CURVE = {"seed", "epoch"}

# Packages whose versions go into the manifest (distribution names; not imported).
_VERSIONED = ("xfw", "numpy", "scipy", "scikit-learn", "pandas", "torch", "tensorflow", "keras", "dask",
              "distributed", "seaborn", "matplotlib", "tqdm")


# --------------------------------------------------------------------------- formatting


def _fmt(value) -> str:
    """One CSV field: '' for None, repr for floats (round-trips exactly), str otherwise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        return repr(float(value))
    if isinstance(value, int) or type(value).__name__.startswith("int"):
        return str(int(value))
    return " ".join(str(value).split())  # one line, no stray whitespace


def _parse(value: str, column: str, floats, ints):
    if column in floats:
        return float(value) if value != "" else float("nan")
    if column in ints:
        return int(value) if value != "" else None
    return value


def _csv_text(columns, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_fmt(row.get(c)) for c in columns])
    return buf.getvalue()


def _read_rows(path, columns, floats, ints) -> list:
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return []
        if tuple(header) != tuple(columns):
            raise ValueError(f"{path}: unexpected columns {header}; expected {list(columns)}")
        return [{c: _parse(v, c, floats, ints) for c, v in zip(columns, r)} for r in reader if r]


def cell_key(row) -> tuple:
    """(framework, eta, lmbda, seed) of a cell or curve row, as exact Python values."""
    return (str(row["framework"]), float(row["eta"]), float(row["lmbda"]), int(row["seed"]))


# --------------------------------------------------------------------------- the writer


class RunStore:
    """The files of one run folder; the only writer of that folder.

    ``cells`` is a dict key -> row in file order; ``curves`` a dict key -> list of rows.
    """

    def __init__(self, run_dir: str):
        self.run_dir = os.fspath(run_dir)
        self.cells_path = os.path.join(self.run_dir, CELLS)
        self.curves_path = os.path.join(self.run_dir, CURVES)
        self.manifest_path = os.path.join(self.run_dir, MANIFEST)
        self.cells = {cell_key(r): r for r in _read_rows(self.cells_path, CELL_COLUMNS, _FLOAT_CELL, _INT_CELL)}
        self.curves = {}
        for r in _read_rows(self.curves_path, CURVE_COLUMNS, _FLOAT_CURVE, _INT_CURVE):
            self.curves.setdefault(cell_key(r), []).append(r)
        self._curve_text = {}  # key -> the cell's rows as CSV text (formatted once)
        stale = [k for k in self.curves if k not in self.cells]
        if stale:  # written before a kill, whose cell row never made it: the cell reruns
            for k in stale:
                del self.curves[k]
            atomic_write(self.curves_path, self._curves_text())

    def exists(self) -> bool:
        return os.path.exists(self.manifest_path)

    def done(self) -> set:
        """Keys of the cells a rerun skips (status ok or diverged)."""
        return {k for k, r in self.cells.items() if r["status"] in DONE_STATUSES}

    def _curves_text(self) -> str:
        parts = [_csv_text(CURVE_COLUMNS, [])]
        for key, rows in self.curves.items():
            if key not in self._curve_text:
                self._curve_text[key] = _csv_text(CURVE_COLUMNS, rows).split("\n", 1)[1]
            parts.append(self._curve_text[key])
        return "".join(parts)

    def add(self, row: dict, curve_rows=()) -> None:
        """Record one finished cell (replacing an earlier row of the same key, e.g. a failed
        one): its curve rows first, then its row in cells.csv, each file atomically."""
        missing = [c for c in CELL_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"cell row lacks {missing}")
        if row["status"] not in STATUSES:
            raise ValueError(f"status {row['status']!r} is not one of {STATUSES}")
        key = cell_key(row)
        os.makedirs(self.run_dir, exist_ok=True)
        self.curves[key] = [dict(r) for r in curve_rows]
        self._curve_text.pop(key, None)
        atomic_write(self.curves_path, self._curves_text())
        self.cells[key] = dict(row)
        atomic_write(self.cells_path, _csv_text(CELL_COLUMNS, self.cells.values()))

    # ------------------------------------------------------------------ manifest
    def read_manifest(self) -> dict | None:
        if not os.path.exists(self.manifest_path):
            return None
        return read_manifest(self.run_dir)

    def write_manifest(self, manifest: dict) -> None:
        os.makedirs(self.run_dir, exist_ok=True)
        atomic_write(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=False, allow_nan=True) + "\n")


# --------------------------------------------------------------------------- readers


def read_manifest(run_dir, *, missing_ok: bool = False) -> dict:
    """The run's manifest.json as a dict (``{}`` when it is missing and ``missing_ok``)."""
    path = os.path.join(os.fspath(run_dir), MANIFEST)
    if missing_ok and not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _frame(path, columns, ints, strings):
    import pandas as pd

    if not os.path.exists(path):
        return pd.DataFrame({c: pd.Series(dtype="Int64" if c in ints else (str if c in strings else float))
                             for c in columns})
    df = pd.read_csv(path, dtype={c: str for c in strings}, keep_default_na=False,
                     na_values={c: ["", "nan", "NaN"] for c in columns if c not in strings})
    for c in strings:
        df[c] = df[c].fillna("").astype(str)
    for c in ints:
        df[c] = df[c].astype("Int64")
    return df[list(columns)]


def read_cells(run_dir):
    """cells.csv as a DataFrame with the columns of :data:`CELL_COLUMNS`.

    ``eta``, ``lmbda``, losses, accuracies and ``seconds`` are float64 (NaN where a
    diverged cell's loss is NaN); ``seed``, ``epochs`` and ``diverged_epoch`` are
    nullable ``Int64`` (``<NA>`` unless diverged for the last); ``framework``,
    ``status`` and ``error`` are strings (``error`` is ``""`` unless failed). An empty
    frame when the run has no cells yet.
    """
    return _frame(os.path.join(os.fspath(run_dir), CELLS), CELL_COLUMNS, _INT_CELL, {"framework", "status", "error"})


def read_curves(run_dir):
    """curves.csv as a DataFrame with the columns of :data:`CURVE_COLUMNS`: one row per
    (framework, eta, lmbda, seed, epoch); ``seed`` and ``epoch`` ``Int64``, the rest
    float64 except ``framework``."""
    return _frame(os.path.join(os.fspath(run_dir), CURVES), CURVE_COLUMNS, _INT_CURVE, {"framework"})


# --------------------------------------------------------------------------- provenance


def now() -> str:
    """The local time with its UTC offset, ISO 8601, to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def versions() -> dict:
    """Python and the installed versions of the suite and every framework (not imported)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(folder=None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the project's git checkout."""
    folder = folder or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def git(*args):
        return subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "hostname": socket.gethostname(), "executable": sys.executable}
