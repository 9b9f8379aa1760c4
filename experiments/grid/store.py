"""The results of grid runs on disk, one folder per run: the only reader and writer.

Everything else (the runner, the tables, the figures, the report) goes through this module.

``<out>/<run>/``::

    manifest.json   the whole config, its identity and hash, the data's fingerprint,
                    versions, git commit, machine, start/end times, status and sessions
    cells.csv       one row per finished cell (CELL_COLUMNS), the source of truth
    curves.csv      one row per epoch of every cell in cells.csv (CURVE_COLUMNS), tidy
    .lock           held by the one session running (experiments.grid.lock)
    figures/        heatmaps (experiments.grid.figures)
    report.md       the run's report (experiments.grid.report)

``cells.csv`` and ``manifest.json`` are written whole and atomically
(:mod:`experiments.files`). ``curves.csv`` is appended, one block of rows per cell,
flushed and fsync'd *before* the cell's row goes into ``cells.csv``; a cell counts as
done only once its row is there and its curves are complete. So a kill leaves at most a
torn last line or the curves of a cell without a row: both are dropped when the run is
opened again, and a finished cell whose curves are missing (a truncated or deleted
``curves.csv``) runs again. Only the parent process of a run writes.

Everything read is validated before it is used (:func:`read_cells`, :func:`read_curves`,
:func:`read_run`, :class:`RunStore`): the columns, every field's type and range, the
status, one row per cell, every cell on the manifest's grid and made with its config
(``config_hash``). A problem raises :class:`DamagedFile`, one line naming the file, the
line and what is wrong. Folders written before ``config_hash`` existed (no such column)
are read as made with the manifest's config.

Floats are written with ``repr``, so every value (eta and lambda included) reads back
bit for bit; NaN and infinities are written ``nan``, ``inf``, ``-inf``. Empty fields
mean "none" (``diverged_epoch`` unless diverged, ``error`` unless failed).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field

from ..errors import UsageError
from ..files import atomic_write
from ..options import FRAMEWORKS

CELL_COLUMNS = ("framework", "eta", "lmbda", "seed", "epochs", "train_loss", "train_accuracy", "test_loss",
                "test_accuracy", "status", "diverged_epoch", "seconds", "error", "config_hash")
CURVE_COLUMNS = ("framework", "eta", "lmbda", "seed", "epoch", "loss", "train_loss", "train_accuracy", "test_loss",
                 "test_accuracy")
KEY_COLUMNS = ("framework", "eta", "lmbda", "seed")
STATUSES = ("ok", "diverged", "failed")
DONE_STATUSES = ("ok", "diverged")  # a rerun skips these and reruns "failed" cells
MANIFEST, CELLS, CURVES = "manifest.json", "cells.csv", "curves.csv"
_OLD_CELL_COLUMNS = CELL_COLUMNS[:-1]  # before config_hash


class DamagedFile(UsageError):
    """A run file that cannot be trusted: ``<path>: line N: what is wrong``."""


# --------------------------------------------------------------------------- fields


def _float(*, low=None, strict=False, nan=False, inf=False, high=None):
    """A parser of one float field; the error says what is allowed."""
    allowed = "a number" + ("" if low is None else f" {'>' if strict else '>='} {low:g}") \
        + ("" if high is None else f" and <= {high:g}") + (", or empty/nan" if nan else "") \
        + (", or inf" if inf else "")

    def parse(value):
        if value in ("", "nan", "NaN"):
            if nan:
                return math.nan
            raise ValueError(f"{value!r} is not allowed; expected {allowed}")
        try:
            x = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not {allowed}") from None
        if math.isnan(x) and nan:
            return x
        if math.isinf(x) and inf and x > 0:
            return x
        if not math.isfinite(x) or (low is not None and (x <= low if strict else x < low)) \
                or (high is not None and x > high):
            raise ValueError(f"{value} is out of range; expected {allowed}")
        return x
    return parse


def _int(*, low, empty=False):
    def parse(value):
        if value == "" and empty:
            return None
        try:
            x = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer" + (" (or empty)" if empty else "")) from None
        if x < low:
            raise ValueError(f"{x} is out of range; expected an integer >= {low}")
        return x
    return parse


def _choice(allowed):
    def parse(value):
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value
    return parse


def _text(value):
    return value


def _hash(value):
    if value and (len(value) != 16 or any(c not in "0123456789abcdef" for c in value)):
        raise ValueError(f"{value!r} is not a config hash (16 hex digits)")
    return value


_LOSS = _float(low=0, nan=True, inf=True)
_ACCURACY = _float(low=0, high=1, nan=True)
_KEY_PARSERS = {"framework": _choice(FRAMEWORKS), "eta": _float(low=0, strict=True), "lmbda": _float(low=0),
                "seed": _int(low=0)}
CELL_PARSERS = {**_KEY_PARSERS, "epochs": _int(low=0), "train_loss": _LOSS, "train_accuracy": _ACCURACY,
                "test_loss": _LOSS, "test_accuracy": _ACCURACY, "status": _choice(STATUSES),
                "diverged_epoch": _int(low=1, empty=True), "seconds": _float(low=0), "error": _text,
                "config_hash": _hash}
CURVE_PARSERS = {**_KEY_PARSERS, "epoch": _int(low=1), "loss": _LOSS, "train_loss": _LOSS,
                 "train_accuracy": _ACCURACY, "test_loss": _LOSS, "test_accuracy": _ACCURACY}


def _cell_problem(row) -> str | None:
    """What is inconsistent within one cell row, or None."""
    status = row["status"]
    if status == "ok":
        for c in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
            if not math.isfinite(row[c]):
                return f"{c} is {row[c]} in a cell with status ok"
    if (status == "diverged") != (row["diverged_epoch"] is not None):
        return "diverged_epoch must be given exactly when the status is diverged"
    if status == "diverged" and row["diverged_epoch"] != row["epochs"]:
        return f"diverged_epoch {row['diverged_epoch']} differs from epochs {row['epochs']}"
    return None


def describe(key) -> str:
    framework, eta, lmbda, seed = key
    return f"{framework} eta={eta!r} lambda={lmbda!r} seed={seed}"


def cell_key(row) -> tuple:
    """(framework, eta, lmbda, seed) of a cell or curve row, as exact Python values."""
    return (str(row["framework"]), float(row["eta"]), float(row["lmbda"]), int(row["seed"]))


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


def _csv_text(columns, rows, header=True) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(columns)
    for row in rows:
        w.writerow([_fmt(row.get(c)) for c in columns])
    return buf.getvalue()


# --------------------------------------------------------------------------- reading


@dataclass
class Grid:
    """What the rows of a run may hold: its frameworks, etas, lmbdas, seeds and config hashes."""

    frameworks: tuple
    etas: tuple
    lmbdas: tuple
    seeds: tuple
    hashes: frozenset  # "" accepts rows written before config_hash existed

    @classmethod
    def of_manifest(cls, manifest: dict, path: str) -> "Grid | None":
        """The grid a manifest's config gives; an axis it does not record is not checked."""
        config = manifest.get("config")
        if config is None:
            return None
        axes = {}
        for name, kind in (("frameworks", str), ("etas", float), ("lmbdas", float), ("seeds", int)):
            if name not in config:
                continue
            try:
                axes[name] = tuple(kind(v) for v in config[name])
            except (TypeError, ValueError):
                raise DamagedFile(f"{path}: config: {name} is {config[name]!r}; expected a list of "
                                  f"{kind.__name__} values") from None
        return cls(**{n: axes.get(n) for n in ("frameworks", "etas", "lmbdas", "seeds")},
                   hashes=frozenset({manifest.get("config_hash") or "", ""}))

    def problem(self, key, config_hash=None) -> str | None:
        framework, eta, lmbda, seed = key
        for name, value, allowed in (("framework", framework, self.frameworks), ("eta", eta, self.etas),
                                     ("lmbda", lmbda, self.lmbdas), ("seed", seed, self.seeds)):
            if allowed is not None and value not in allowed:
                return f"{name} {value!r} is not on the run's grid ({', '.join(map(repr, allowed))})"
        if config_hash is not None and config_hash not in self.hashes:
            return (f"config_hash {config_hash} is not this run's ({sorted(h for h in self.hashes if h)[0]}): "
                    "the cell was made with another configuration")
        return None


def _lines(path, columns, accepted=()):
    """(header, [(line number, fields)], torn) of a CSV file; a last line without its
    newline (a write cut short) is left out and reported as ``torn``."""
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DamagedFile(f"{path}: not UTF-8 text (byte {e.start}); expected a CSV file written by xfw") from None
    torn = bool(text) and not text.endswith("\n")
    if torn:
        text = text[:text.rfind("\n") + 1]
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as e:
        raise DamagedFile(f"{path}: not a CSV file ({e})") from None
    if not rows:
        if torn:  # only a torn header: nothing was ever recorded
            return tuple(columns), [], True
        raise DamagedFile(f"{path}: the file is empty; expected the header {','.join(columns)}")
    header = tuple(rows[0])
    if header != tuple(columns) and header not in accepted:
        raise DamagedFile(f"{path}: line 1: unexpected columns {','.join(header)}; expected {','.join(columns)}")
    return header, [(i + 2, r) for i, r in enumerate(rows[1:]) if r], torn


def _parse_rows(path, header, lines, parsers):
    out = []
    for number, fields in lines:
        if len(fields) != len(header):
            raise DamagedFile(f"{path}: line {number}: {len(fields)} fields; expected {len(header)} "
                              f"({','.join(header)})")
        row = {}
        for column, value in zip(header, fields):
            try:
                row[column] = parsers[column](value)
            except ValueError as e:
                raise DamagedFile(f"{path}: line {number}: {column}: {e}") from None
        out.append((number, row))
    return out


@dataclass
class RunFiles:
    """What a run folder holds, validated: the manifest (or None), the cells (key -> row,
    file order), each cell's curve rows, the done cells whose curves are missing or
    incomplete, and whether curves.csv holds rows to drop (a torn line, stale blocks)."""

    manifest: dict | None
    cells: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    incomplete: set = field(default_factory=set)
    stale: bool = False


def read_manifest(run_dir, *, missing_ok: bool = False) -> dict:
    """The run's manifest.json as a dict (``{}`` when it is missing and ``missing_ok``)."""
    path = os.path.join(os.fspath(run_dir), MANIFEST)
    if missing_ok and not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise DamagedFile(f"{path}: missing; a run folder holds the {MANIFEST} its run wrote") from None
    except UnicodeDecodeError as e:
        raise DamagedFile(f"{path}: not UTF-8 text (byte {e.start}); expected the JSON xfw wrote") from None
    except json.JSONDecodeError as e:
        raise DamagedFile(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(manifest, dict):
        raise DamagedFile(f"{path}: holds a JSON {type(manifest).__name__}; expected an object")
    for name, kind in (("config", dict), ("identity", dict), ("sessions", list), ("config_hash", str)):
        if name in manifest and not isinstance(manifest[name], kind):
            raise DamagedFile(f"{path}: {name} is a {type(manifest[name]).__name__}; expected a "
                              f"{'JSON object' if kind is dict else 'list' if kind is list else 'string'}")
    return manifest


def read_run(run_dir, *, grid: Grid | None = None) -> RunFiles:
    """Every file of ``run_dir``, validated (see the module docstring). ``grid`` is what
    the rows may hold (default: the manifest's grid; no grid check without a manifest)."""
    run_dir = os.fspath(run_dir)
    manifest_path = os.path.join(run_dir, MANIFEST)
    manifest = read_manifest(run_dir) if os.path.exists(manifest_path) else None
    if grid is None and manifest is not None:
        grid = Grid.of_manifest(manifest, manifest_path)
    files = RunFiles(manifest)
    path = os.path.join(run_dir, CELLS)
    if os.path.exists(path):
        header, lines, torn = _lines(path, CELL_COLUMNS, accepted=(_OLD_CELL_COLUMNS,))
        if torn:  # cells.csv is only ever replaced whole
            raise DamagedFile(f"{path}: the last line is cut short (no newline at the end)")
        seen = {}
        for number, row in _parse_rows(path, header, lines, CELL_PARSERS):
            row.setdefault("config_hash", "")
            key = cell_key(row)
            problem = _cell_problem(row) or (grid.problem(key, row["config_hash"]) if grid else None)
            if problem is None and key in seen:
                problem = f"repeats the cell of line {seen[key]} ({describe(key)})"
            if problem:
                raise DamagedFile(f"{path}: line {number}: {problem}")
            seen[key] = number
            row["error"] = row["error"] or None
            files.cells[key] = row
    path = os.path.join(run_dir, CURVES)
    if os.path.exists(path):
        header, lines, files.stale = _lines(path, CURVE_COLUMNS)
        last = {}
        for number, row in _parse_rows(path, header, lines, CURVE_PARSERS):
            key = cell_key(row)
            problem = grid.problem(key) if grid else None
            previous = last.get(key, 0)
            if problem is None and row["epoch"] not in (1, previous + 1):
                problem = f"epoch {row['epoch']} of {describe(key)} follows epoch {previous}"
            if problem:
                raise DamagedFile(f"{path}: line {number}: {problem}")
            last[key] = row["epoch"]
            if row["epoch"] == 1:  # a block starts: a rerun supersedes the earlier block of its cell
                files.stale |= key in files.curves
                files.curves[key] = []
            files.curves[key].append(row)
    for key in list(files.curves):
        if key not in files.cells:  # written before a kill, whose cell row never made it
            del files.curves[key]
            files.stale = True
    for key, row in files.cells.items():
        if row["status"] in DONE_STATUSES and len(files.curves.get(key, ())) != row["epochs"]:
            files.incomplete.add(key)
    return files


def _frame(rows, columns, parsers):
    import pandas as pd

    data = {}
    for c in columns:
        values = [r.get(c) for r in rows]
        probe = parsers[c]
        if probe in (_text, _hash) or c in ("framework", "status"):
            data[c] = pd.Series(["" if v is None else str(v) for v in values], dtype=object)
        elif c in ("seed", "epochs", "epoch", "diverged_epoch"):
            data[c] = pd.Series(values, dtype="Int64")
        else:
            data[c] = pd.Series(values, dtype=float)
    return pd.DataFrame(data, columns=list(columns))


def read_cells(run_dir):
    """cells.csv as a DataFrame with the columns of :data:`CELL_COLUMNS`, validated.

    ``eta``, ``lmbda``, losses, accuracies and ``seconds`` are float64 (NaN where a
    diverged cell's loss is NaN); ``seed``, ``epochs`` and ``diverged_epoch`` are
    nullable ``Int64`` (``<NA>`` unless diverged for the last); ``framework``,
    ``status``, ``error`` and ``config_hash`` are strings (``error`` is ``""`` unless
    failed). An empty frame when the run has no cells yet.
    """
    return cells_frame(read_run(run_dir))


def cells_frame(files: RunFiles):
    return _frame(list(files.cells.values()), CELL_COLUMNS, CELL_PARSERS)


def read_curves(run_dir):
    """curves.csv as a DataFrame with the columns of :data:`CURVE_COLUMNS`, validated:
    one row per (framework, eta, lmbda, seed, epoch) of the cells in cells.csv; ``seed``
    and ``epoch`` ``Int64``, the rest float64 except ``framework``."""
    return curves_frame(read_run(run_dir))


def curves_frame(files: RunFiles):
    return _frame([r for rows in files.curves.values() for r in rows], CURVE_COLUMNS, CURVE_PARSERS)


# --------------------------------------------------------------------------- the writer


class RunStore:
    """The files of one run folder; the only writer of that folder.

    Opening reads and validates everything (against ``grid`` when given), drops what a
    kill left in curves.csv (``repair``; only the session holding the run's lock may) and
    finds the done cells whose curves are incomplete: :meth:`done` leaves them out, so
    they run again. ``cells`` is a dict key -> row in file order; ``curves`` a dict key ->
    list of rows.
    """

    def __init__(self, run_dir: str, *, grid: Grid | None = None, repair: bool = True):
        self.run_dir = os.fspath(run_dir)
        self.cells_path = os.path.join(self.run_dir, CELLS)
        self.curves_path = os.path.join(self.run_dir, CURVES)
        self.manifest_path = os.path.join(self.run_dir, MANIFEST)
        files = read_run(self.run_dir, grid=grid) if os.path.isdir(self.run_dir) else RunFiles(None)
        self.cells, self.curves, self.incomplete = files.cells, files.curves, files.incomplete
        if repair and files.stale:
            atomic_write(self.curves_path, _csv_text(CURVE_COLUMNS, [r for rows in self.curves.values()
                                                                     for r in rows]))

    def exists(self) -> bool:
        return os.path.exists(self.manifest_path)

    def done(self) -> set:
        """Keys of the cells a rerun skips (status ok or diverged, curves complete)."""
        return {k for k, r in self.cells.items() if r["status"] in DONE_STATUSES and k not in self.incomplete}

    def add(self, row: dict, curve_rows=()) -> None:
        """Record one finished cell (replacing an earlier row of the same key, e.g. a failed
        one): its curve rows appended to curves.csv and fsync'd, then cells.csv replaced."""
        missing = [c for c in _OLD_CELL_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"cell row lacks {missing}")
        if row["status"] not in STATUSES:
            raise ValueError(f"status {row['status']!r} is not one of {STATUSES}")
        key = cell_key(row)
        os.makedirs(self.run_dir, exist_ok=True)
        curve_rows = [dict(r) for r in curve_rows]
        if not os.path.exists(self.curves_path):
            atomic_write(self.curves_path, _csv_text(CURVE_COLUMNS, []))
        with open(self.curves_path, "a", encoding="utf-8", newline="") as fh:
            fh.write(_csv_text(CURVE_COLUMNS, curve_rows, header=False))
            fh.flush()
            os.fsync(fh.fileno())
        self.curves[key] = curve_rows
        self.incomplete.discard(key)
        cells = {**self.cells, key: {"config_hash": "", **row}}
        atomic_write(self.cells_path, _csv_text(CELL_COLUMNS, cells.values()))
        self.cells = cells  # only once it is on disk

    def stamp(self, config_hash: str) -> None:
        """Give rows written before config_hash existed the run's hash (they were accepted
        as made with its config); written with the next cell."""
        for row in self.cells.values():
            row["config_hash"] = row.get("config_hash") or config_hash

    # ------------------------------------------------------------------ manifest
    def read_manifest(self) -> dict | None:
        if not os.path.exists(self.manifest_path):
            return None
        return read_manifest(self.run_dir)

    def write_manifest(self, manifest: dict) -> None:
        os.makedirs(self.run_dir, exist_ok=True)
        atomic_write(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=False, allow_nan=True) + "\n")
