"""The run folder's files: exact round trips, atomic writes, one row per cell, readers."""
import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from experiments.files import atomic_write
from experiments.grid import provenance, store as S
from experiments.grid.config import DEFAULT_GRID, GridConfig, identity_changes

ETAS = (1e-05, 9.999999999999999e-06, 0.1 + 0.2, 1 / 3, 10.0)


def cell(fw="scratch", eta=0.1, lmbda=1e-4, seed=0, status="ok", **kw):
    row = dict(framework=fw, eta=eta, lmbda=lmbda, seed=seed, epochs=2, train_loss=0.5, train_accuracy=0.75,
               test_loss=0.625, test_accuracy=0.7, status=status, diverged_epoch=None, seconds=1.25, error=None)
    row.update(kw)
    return row


def curves(row, n=2):
    return [dict(framework=row["framework"], eta=row["eta"], lmbda=row["lmbda"], seed=row["seed"], epoch=e + 1,
                 loss=1.0 / (e + 1), train_loss=0.5, train_accuracy=0.5, test_loss=0.5, test_accuracy=0.5)
            for e in range(n)]


def test_floats_round_trip_exactly(tmp_path):
    st = S.RunStore(tmp_path)
    for i, eta in enumerate(ETAS):
        row = cell(eta=eta, lmbda=eta / 7, train_loss=math.pi * eta)
        st.add(row, curves(row))
    again = S.RunStore(tmp_path)
    assert list(again.cells) == [("scratch", eta, eta / 7, 0) for eta in ETAS]
    df = S.read_cells(tmp_path)
    assert df.eta.tolist() == list(ETAS) and df.lmbda.tolist() == [e / 7 for e in ETAS]
    assert df.train_loss.tolist() == [math.pi * e for e in ETAS]
    assert list(df.columns) == list(S.CELL_COLUMNS)
    cv = S.read_curves(tmp_path)
    assert list(cv.columns) == list(S.CURVE_COLUMNS) and len(cv) == 2 * len(ETAS)
    assert sorted(set(cv.eta)) == sorted(ETAS)


def test_reader_dtypes_nan_and_empty_fields(tmp_path):
    st = S.RunStore(tmp_path)
    st.add(cell(eta=10.0, status="diverged", diverged_epoch=3, epochs=3, train_loss=float("nan"),
                test_loss=float("inf")))
    st.add(cell(eta=1.0, status="failed", epochs=0, train_loss=None, train_accuracy=None, test_loss=None,
                test_accuracy=None, error="ValueError: bad, very bad"))
    st.add(cell(eta=0.1))
    df = S.read_cells(tmp_path).set_index("eta")
    assert str(df.seed.dtype) == "Int64" and str(df.diverged_epoch.dtype) == "Int64"
    assert df.loc[10.0, "diverged_epoch"] == 3 and pd.isna(df.loc[0.1, "diverged_epoch"])
    assert math.isnan(df.loc[10.0, "train_loss"]) and df.loc[10.0, "test_loss"] == math.inf
    assert math.isnan(df.loc[1.0, "train_accuracy"])
    assert df.loc[1.0, "error"] == "ValueError: bad, very bad" and df.loc[0.1, "error"] == ""
    assert df.framework.tolist() == ["scratch"] * 3 and df.status.tolist() == ["diverged", "failed", "ok"]
    assert st.done() == {("scratch", 10.0, 1e-4, 0), ("scratch", 0.1, 1e-4, 0)}


def test_one_row_per_cell_a_failed_cell_is_replaced(tmp_path):
    st = S.RunStore(tmp_path)
    st.add(cell(eta=0.1))
    failed = cell(eta=0.5, status="failed", error="RuntimeError: x")
    st.add(failed, curves(failed, 1))
    st.add(cell(eta=1.0))
    redo = cell(eta=0.5)
    st.add(redo, curves(redo, 2))
    df = S.read_cells(tmp_path)
    assert df.eta.tolist() == [0.1, 0.5, 1.0] and df.status.tolist() == ["ok"] * 3
    cv = S.read_curves(tmp_path)
    assert cv[cv.eta == 0.5].epoch.tolist() == [1, 2]


def test_curves_of_unrecorded_cells_are_dropped_on_reopen(tmp_path):
    st = S.RunStore(tmp_path)
    kept = cell(eta=0.1)
    st.add(kept, curves(kept))
    # A kill between appending to curves.csv and replacing cells.csv leaves the curves of a
    # cell that is not in cells.csv.
    with open(st.curves_path, "a") as fh:
        fh.write("scratch,0.2,0.0001,0,1,1.0,0.5,0.5,0.5,0.5\nscratch,0.2,0.0001,0,2,0.5,0.5,0.5,0.5,0.5\n")
    assert len(S.read_curves(tmp_path)) == 2  # readers never show them
    S.RunStore(tmp_path)
    assert "0.2," not in (tmp_path / "curves.csv").read_text()  # and the next session drops them
    assert S.read_curves(tmp_path).eta.tolist() == [0.1, 0.1]


def test_curves_are_appended_not_rewritten(tmp_path):
    st = S.RunStore(tmp_path)
    sizes = []
    for eta in (0.1, 0.2, 0.3):
        row = cell(eta=eta)
        before = (tmp_path / "curves.csv").read_bytes() if sizes else b""
        st.add(row, curves(row))
        after = (tmp_path / "curves.csv").read_bytes()
        assert after.startswith(before)  # the earlier cells' rows are not written again
        sizes.append(len(after))
    assert sizes[2] - sizes[1] == sizes[1] - sizes[0]


def test_a_torn_last_line_is_recovered(tmp_path):
    st = S.RunStore(tmp_path)
    row = cell(eta=0.1)
    st.add(row, curves(row))
    with open(st.curves_path, "a") as fh:
        fh.write("scratch,0.2,0.0001,0,1,0.9")  # cut short by a kill
    assert len(S.read_curves(tmp_path)) == 2
    again = S.RunStore(tmp_path)
    assert (tmp_path / "curves.csv").read_text().endswith("0.5\n") and again.done() == {S.cell_key(row)}
    more = cell(eta=0.2)
    again.add(more, curves(more))
    assert S.read_curves(tmp_path).eta.tolist() == [0.1, 0.1, 0.2, 0.2]


def test_cells_whose_curves_are_missing_are_not_done(tmp_path):
    st = S.RunStore(tmp_path)
    for eta in (0.1, 0.2):
        row = cell(eta=eta)
        st.add(row, curves(row))
    lines = (tmp_path / "curves.csv").read_text().splitlines(keepends=True)
    (tmp_path / "curves.csv").write_text("".join(lines[:4]))  # truncated: eta=0.2 lost its 2nd epoch
    assert S.RunStore(tmp_path).done() == {S.cell_key(cell(eta=0.1))}
    os.remove(tmp_path / "curves.csv")
    reopened = S.RunStore(tmp_path)
    assert reopened.done() == set() and len(reopened.incomplete) == 2


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.csv"
    atomic_write(path, "old\n")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        atomic_write(path, "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["f.csv"]  # no temporary file left behind


def test_readers_of_an_empty_run(tmp_path):
    cells, cv = S.read_cells(tmp_path), S.read_curves(tmp_path)
    assert cells.empty and list(cells.columns) == list(S.CELL_COLUMNS)
    assert cv.empty and list(cv.columns) == list(S.CURVE_COLUMNS)


def test_manifest_round_trip(tmp_path):
    st = S.RunStore(tmp_path)
    assert st.read_manifest() is None
    st.write_manifest({"run": "x", "config": {"etas": [1e-05]}, "finished": None})
    assert S.read_manifest(tmp_path) == {"run": "x", "config": {"etas": [1e-05]}, "finished": None}
    assert json.loads((tmp_path / "manifest.json").read_text())["run"] == "x"
    v = provenance.versions()
    assert v["python"] and v["numpy"] == np.__version__
    assert set(provenance.machine()) >= {"platform", "processor", "cpu_count", "hostname"}


def test_bad_header_is_an_error(tmp_path):
    (tmp_path / "cells.csv").write_text("a,b\n1,2\n")
    with pytest.raises(S.DamagedFile, match=r"cells.csv: line 1: unexpected columns a,b; expected framework,"):
        S.RunStore(tmp_path)


def test_config_identity_and_defaults():
    c = GridConfig()
    assert c.etas == c.lmbdas == DEFAULT_GRID == (1e-05, 1e-04, 1e-03, 1e-02, 0.1, 1.0, 10.0)
    assert (c.arch, c.dataset, c.frameworks, c.epochs, c.batch_size, c.optimizer, c.executor, c.out) == (
        "course_cnn", "digits", ("scratch", "keras", "torch"), 100, 100, "sgd", "population", "results")
    assert c.run_name == "course_cnn-digits"
    # The executor, workers, scheduler and output folder do not change the numbers.
    same = c.merged({"executor": "dask", "workers": 7, "scheduler": "tcp://x:1", "out": "elsewhere"})
    assert same.identity_hash() == c.identity_hash()
    other = c.merged({"epochs": 5, "etas": "0.1,1"})
    assert other.etas == (0.1, 1.0)
    assert identity_changes(c.identity(), other.identity()) == [
        "epochs: 100 -> 5", "etas: [1e-05, 0.0001, 0.001, 0.01, 0.1, 1.0, 10.0] -> [0.1, 1.0]"]
    assert other.identity_hash() != c.identity_hash()
