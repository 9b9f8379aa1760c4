"""``report.md`` of a grid run: configuration, figures, best cells, and where frameworks disagree.

:func:`write_report` draws the figures (:func:`experiments.grid.figures.draw_run`) and writes
``run_dir/report.md`` beside them, with figure links relative to the run folder. Tables
are plain Markdown written here (no ``tabulate`` dependency).

With several seeds, every number is the mean over the seeds of a cell; a cell counts as
diverged if any seed diverged, else as failed if any seed failed.
"""
from __future__ import annotations

import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd

from ..files import atomic_write
from . import figures as F
from . import tables as T
from .store import read_cells, read_manifest

__all__ = ["write_report", "best_cells", "status_counts", "disagreements", "markdown_table"]

_STATUSES = ("ok", "diverged", "failed")


# --------------------------------------------------------------------------- markdown

def _escape(value) -> str:
    text = str(value).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return text if text.strip() else " "


def markdown_table(headers, rows, align=None) -> str:
    """A GitHub-flavoured Markdown table; ``align`` is a string of ``l``/``r``/``c`` per column."""
    headers = [_escape(h) for h in headers]
    align = align or "l" * len(headers)
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(headers) + " |",
             "| " + " | ".join(rule[a] for a in align) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(_escape(cell) for cell in row) + " |")
    return "\n".join(lines)


def _num(value, fmt=".4f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "\u2014"
    return format(value, fmt)


def _grid_value(value) -> str:
    return format(float(value), "g")


# --------------------------------------------------------------------------- tables

def _frameworks_and_axes(cells, manifest):
    return T.framework_order(cells, manifest), T.grid_axes(cells, manifest)


def best_cells(cells, manifest: dict | None = None) -> pd.DataFrame:
    """Per framework, the "ok" cell with the highest mean test accuracy.

    Index framework; columns eta, lmbda, train_accuracy, test_accuracy, epochs, n_seeds.
    Ties go to the smaller eta, then the smaller lambda. Frameworks without any "ok"
    cell are left out.
    """
    frameworks, (etas, lmbdas) = _frameworks_and_axes(cells, manifest)
    rows = {}
    for framework in frameworks:
        summary = T.cell_summary(cells, framework, etas=etas, lmbdas=lmbdas)
        ok = summary[(summary["status"] == "ok") & summary["test_accuracy"].notna()]
        if ok.empty:
            continue
        best = ok.sort_values(["test_accuracy", "eta", "lmbda"], ascending=[False, True, True]).iloc[0]
        rows[framework] = best[["eta", "lmbda", "train_accuracy", "test_accuracy", "epochs", "n_seeds"]]
    columns = ["eta", "lmbda", "train_accuracy", "test_accuracy", "epochs", "n_seeds"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("framework")


def status_counts(cells, manifest: dict | None = None) -> pd.DataFrame:
    """Per framework: runs (cell x seed rows) that are ok, diverged, failed; and grid cells without a result."""
    frameworks, (etas, lmbdas) = _frameworks_and_axes(cells, manifest)
    rows = {}
    for framework in frameworks:
        own = cells[cells["framework"] == framework]
        counts = {s: int((own["status"] == s).sum()) for s in _STATUSES}
        counts["other"] = int((~own["status"].isin(_STATUSES)).sum())
        summary = T.cell_summary(cells, framework, etas=etas, lmbdas=lmbdas)
        counts["missing cells"] = len(etas) * len(lmbdas) - len(summary)
        counts["seeds"] = int(own["seed"].nunique())
        rows[framework] = counts
    columns = [*_STATUSES, "other", "missing cells", "seeds"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("framework")


def disagreements(cells, *, margin: float = 0.05, base: str = T.BASE,
                  manifest: dict | None = None) -> pd.DataFrame:
    """Every (framework, eta, lambda) where a framework and ``base`` disagree.

    A disagreement is ``|test accuracy(framework) - test accuracy(base)| > margin`` with
    both cells ok, or one of the two diverged while the other finished ok. A failed or
    missing cell is not compared (failed cells are listed on their own in the report).
    Columns: framework, eta, lmbda, base_test_accuracy, test_accuracy, difference, note.
    """
    frameworks, (etas, lmbdas) = _frameworks_and_axes(cells, manifest)
    columns = ["framework", "eta", "lmbda", "base_test_accuracy", "test_accuracy", "difference", "note"]
    if base not in frameworks:
        return pd.DataFrame(columns=columns)
    axes = dict(etas=etas, lmbdas=lmbdas)
    base_values = T.grid_table(cells, base, "test_accuracy", **axes)
    base_status = T.status_table(cells, base, **axes)
    rows = []
    for other in (f for f in frameworks if f != base):
        values = T.grid_table(cells, other, "test_accuracy", **axes)
        status = T.status_table(cells, other, **axes)
        for i, eta in enumerate(etas):
            for j, lmbda in enumerate(lmbdas):
                so, sb = status.iat[i, j], base_status.iat[i, j]
                a, b = values.iat[i, j], base_values.iat[i, j]
                if so == "ok" and sb == "ok":
                    if math.isfinite(a) and math.isfinite(b) and abs(a - b) > margin:
                        rows.append([other, eta, lmbda, b, a, a - b,
                                     f"{other} {'above' if a > b else 'below'} {base} by {abs(a - b):.4f}"])
                elif {so, sb} == {"ok", "diverged"}:
                    who, fine = (other, base) if so == "diverged" else (base, other)
                    rows.append([other, eta, lmbda, b, a, math.nan, f"{who} diverged, {fine} did not"])
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- sections

def _config_rows(config: dict):
    for key, value in config.items():
        if isinstance(value, (list, tuple)):
            shown = ", ".join(_grid_value(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                              else str(v) for v in value)
        elif isinstance(value, dict):
            shown = json.dumps(value, sort_keys=True)
        else:
            shown = "\u2014" if value is None else str(value)
        yield [f"`{key}`", shown]


def _version_rows(manifest: dict):
    """The run's versions (manifest), then those drawing this report where they differ."""
    recorded = manifest.get("versions")
    rows = []
    if isinstance(recorded, dict):
        rows += [[f"`{k}`", "not installed" if v is None else str(v), "run (manifest)"] for k, v in recorded.items()]
    else:
        recorded = {}
        rows.append(["\u2014", "no versions recorded in manifest.json", "run (manifest)"])
    mine = {"python": platform.python_version()}
    for package in ("numpy", "pandas", "matplotlib", "seaborn"):
        try:
            mine[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    rows += [[f"`{k}`", v, "this report"] for k, v in mine.items() if str(recorded.get(k)) != v]
    return rows


def _manifest_rows(manifest: dict):
    """Top-level manifest fields other than run/config/versions: scalars, and small dicts inline."""
    for key, value in manifest.items():
        if key in ("run", "config", "versions", "identity", "sessions"):
            continue
        if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
            yield [f"`{key}`", "; ".join(f"{k}={v}" for k, v in value.items())]
        elif value is None or isinstance(value, (str, int, float, bool)):
            yield [f"`{key}`", "\u2014" if value is None else str(value)]


def _figure_links(figures: dict, run_dir: Path, frameworks) -> list[str]:
    def link(stem, caption):
        name = f"{stem}.png"
        if name not in figures:
            return None
        relative = Path(os.path.relpath(figures[name], run_dir)).as_posix()
        return f"![{caption}]({relative})"

    lines = []
    for metric in reversed(T.METRICS):  # test accuracy first
        title = T.METRIC_NAMES[metric]
        lines.append(f"### {title.capitalize()}")
        lines.append("")
        entries = [link(f"{metric}_side_by_side", f"{title}, all frameworks on one colour scale")]
        entries += [link(f"{metric}_{f}", f"{f}: {title}") for f in frameworks]
        entries += [link(f"{metric}_diff_{f}_minus_{T.BASE}", f"{title}: {f} - {T.BASE}")
                    for f in frameworks if f != T.BASE]
        lines += [e + "\n" for e in entries if e]
    curves = link("curves", "loss and accuracy over the epochs")
    if curves:
        lines += ["### Loss and accuracy over the epochs", "", curves, ""]
    return lines


def write_report(run_dir, *, margin: float = 0.05, dpi: float = 100, figures: dict | None = None,
                 redraw: bool = False) -> Path:
    """Write ``run_dir/report.md`` and return its path.

    Figures: ``figures`` (the mapping :func:`F.draw_run` returned) when given;
    else those of the last ``draw_run`` when they are current (same margin, inputs
    unchanged since, see :func:`F.drawn_figures`) and ``redraw`` is false; else
    drawn now with ``margin`` and ``dpi``.
    """
    run_dir = Path(run_dir)
    if figures is None and not redraw:
        figures = F.drawn_figures(run_dir, margin=margin)
    if figures is None:
        figures = F.draw_run(run_dir, margin=margin, dpi=dpi)
    cells = read_cells(run_dir)
    manifest = read_manifest(run_dir, missing_ok=True)
    config = manifest.get("config", {}) if isinstance(manifest.get("config"), dict) else {}
    frameworks, (etas, lmbdas) = _frameworks_and_axes(cells, manifest)
    name = manifest.get("run") or run_dir.name
    several_seeds = cells.groupby("framework")["seed"].nunique().gt(1).any() if len(cells) else False

    out = [f"# Run `{name}`", ""]
    out += [f"Grid: {len(etas)} values of \u03b7 \u00d7 {len(lmbdas)} values of \u03bb; frameworks: "
            + (", ".join(frameworks) if frameworks else "none with results") + ".", ""]
    if several_seeds:
        out += ["Several seeds: every number is the mean over the seeds of a cell; a cell counts as "
                "diverged if any seed diverged, else as failed if any seed failed.", ""]

    out += ["## Configuration", ""]
    out += [markdown_table(["setting", "value"], list(_config_rows(config))) if config
            else "No configuration recorded in `manifest.json`.", ""]
    extra = list(_manifest_rows(manifest))
    if extra:
        out += [markdown_table(["manifest", "value"], extra), ""]

    out += ["## Versions", "", markdown_table(["package", "version", "from"], _version_rows(manifest)), ""]

    out += ["## Cells per framework", "",
            "Runs are (cell, seed) pairs; *missing cells* are grid cells without any result yet.", ""]
    counts = status_counts(cells, manifest)
    if len(counts) and not counts["other"].any():
        counts = counts.drop(columns="other")
    out += [markdown_table(["framework", *counts.columns],
                           [[f, *(int(v) for v in row)] for f, row in counts.iterrows()],
                           align="l" + "r" * len(counts.columns)) if len(counts) else "No cells.", ""]

    out += ["## Best cell per framework", "", "Highest mean test accuracy among cells that finished.", ""]
    best = best_cells(cells, manifest)
    rows = [[f, _grid_value(r["eta"]), _grid_value(r["lmbda"]), _num(r["train_accuracy"]),
             _num(r["test_accuracy"]), _num(r["epochs"], ".0f"), int(r["n_seeds"])] for f, r in best.iterrows()]
    out += [markdown_table(["framework", "\u03b7", "\u03bb", "train accuracy", "test accuracy", "epochs", "seeds"],
                           rows, align="lrrrrrr") if rows else "No cell finished.", ""]

    out += ["## Where the frameworks disagree", ""]
    if T.BASE not in frameworks:
        out += [f"`{T.BASE}` is not in this run: nothing to compare against.", ""]
    elif len(frameworks) < 2:
        out += [f"Only `{T.BASE}` is in this run: nothing to compare.", ""]
    else:
        found = disagreements(cells, margin=margin, manifest=manifest)
        out += [f"Test accuracy compared with `{T.BASE}` cell by cell: listed where "
                f"|difference| > {margin:g}, or where one diverged and the other did not "
                "(failed or missing cells are not compared).", ""]
        if found.empty:
            out += [f"No cell disagrees: every compared cell is within {margin:g} of `{T.BASE}`, "
                    "and no cell diverged in one framework only.", ""]
        else:
            rows = [[r.framework, _grid_value(r.eta), _grid_value(r.lmbda),
                     _num(r.base_test_accuracy), _num(r.test_accuracy), _num(r.difference, "+.4f"), r.note]
                    for r in found.itertuples(index=False)]
            out += [markdown_table(["framework", "\u03b7", "\u03bb", f"{T.BASE} test acc.",
                                    "test acc.", "difference", "note"], rows, align="lrrrrrl"), ""]

    diverged = cells[cells["status"] == "diverged"]
    if len(diverged):
        out += ["## Diverged runs", ""]
        rows = [[r.framework, _grid_value(r.eta), _grid_value(r.lmbda), r.seed, _num(r.diverged_epoch, ".0f")]
                for r in diverged.itertuples(index=False)]
        out += [markdown_table(["framework", "\u03b7", "\u03bb", "seed", "diverged at epoch"], rows,
                               align="lrrrr"), ""]
    failed = cells[~cells["status"].isin(("ok", "diverged"))]
    if len(failed):
        out += ["## Failed runs", ""]
        rows = [[r.framework, _grid_value(r.eta), _grid_value(r.lmbda), r.seed,
                 (str(r.error).strip().splitlines() or [""])[-1][:200]]
                for r in failed.itertuples(index=False)]
        out += [markdown_table(["framework", "\u03b7", "\u03bb", "seed", "error"], rows, align="lrrrl"), ""]

    out += ["## Figures", "",
            "\u03b7 runs down (smallest at the top), \u03bb across. Masked cells: `div` = diverged, "
            "`fail` = failed, blank grey = no result. The numbers behind each map are in the CSV "
            "of the same name in `figures/`.", ""]
    out += _figure_links(figures, run_dir, frameworks)

    path = run_dir / "report.md"
    atomic_write(path, "\n".join(out).rstrip() + "\n")
    return path
