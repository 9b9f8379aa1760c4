"""Damaged or hand-edited run files: every kind is refused before anything is drawn or
written, in one line naming the file, the line and what is wrong."""
import json
import os

import pytest

from experiments.cli import main as cli_main
from experiments.grid import store as S

ETAS, LMBDAS = [0.01, 0.1], [0.0, 1e-4]
HASH = "0123456789abcdef"


def make_run(folder, *, hash_column=True):
    """A valid two-framework run folder (no training): manifest, 8 cells, their curves."""
    folder.mkdir(parents=True, exist_ok=True)
    st = S.RunStore(folder)
    st.write_manifest({"run": folder.name, "config_hash": HASH,
                       "config": {"frameworks": ["scratch", "torch"], "etas": ETAS, "lmbdas": LMBDAS, "seeds": [0]}})
    for fw in ("scratch", "torch"):
        for eta in ETAS:
            for lmbda in LMBDAS:
                key = dict(framework=fw, eta=eta, lmbda=lmbda, seed=0)
                st.add({**key, "epochs": 2, "train_loss": 0.5, "train_accuracy": 0.75, "test_loss": 0.625,
                        "test_accuracy": 0.7, "status": "ok", "diverged_epoch": None, "seconds": 1.0,
                        "error": None, "config_hash": HASH},
                       [{**key, "epoch": e, "loss": 1.0, "train_loss": 0.5, "train_accuracy": 0.5, "test_loss": 0.5,
                         "test_accuracy": 0.5} for e in (1, 2)])
    if not hash_column:  # as folders were written before config_hash existed
        lines = (folder / S.CELLS).read_text().splitlines()
        (folder / S.CELLS).write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in lines))
    return folder


def edit_line(path, number, old, new):
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[number - 1], lines[number - 1]
    lines[number - 1] = lines[number - 1].replace(old, new, 1)
    path.write_text("".join(lines))


def heatmap_error(folder, capsys):
    capsys.readouterr()
    rc = cli_main(["heatmap", str(folder)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert not (folder / "figures").exists() and not (folder / "report.md").exists()  # nothing drawn
    return err[0]


CELL_DAMAGE = [
    ("accuracy 1.7", 2, ",0.7,ok", ",1.7,ok", "line 2: test_accuracy: 1.7 is out of range; expected a number >= 0 and <= 1"),
    ("unknown status", 3, ",ok,", ",weird,", "line 3: status: 'weird' is not one of ok, diverged, failed"),
    ("foreign framework", 6, "torch,", "jax,", "line 6: framework: 'jax' is not one of scratch, keras, torch"),
    ("off-grid eta", 8, "torch,0.1,", "torch,0.5,", "line 8: eta 0.5 is not on the run's grid (0.01, 0.1)"),
    ("garbage", 9, "torch,0.1,0.0001", "@@,garb,age", "line 9: framework: '@@' is not one of"),
    ("too few fields", 7, ",0.7,ok,,1.0,,", ",0.7,ok,", "line 7: 11 fields; expected 14"),
    ("text in a number", 6, "torch,0.01,0.0,0,2", "torch,0.01,0.0,0,two", "line 6: epochs: 'two' is not an integer"),
    ("another config", 9, HASH, "fedcba9876543210", "line 9: config_hash fedcba9876543210 is not this run's"),
    ("ok without a loss", 2, ",0.5,0.75,", ",,0.75,", "line 2: train_loss is nan in a cell with status ok"),
]


@pytest.mark.parametrize("what, line, old, new, message", CELL_DAMAGE, ids=[c[0] for c in CELL_DAMAGE])
def test_damaged_cells_file_is_refused_before_drawing(what, line, old, new, message, tmp_path, capsys):
    folder = make_run(tmp_path / "run")
    edit_line(folder / S.CELLS, line, old, new)
    err = heatmap_error(folder, capsys)
    assert err.startswith(f"xfw: error: {folder / S.CELLS}: {message}"), err


def test_duplicate_rows_and_damaged_bytes_are_refused(tmp_path, capsys):
    folder = make_run(tmp_path / "run")
    path = folder / S.CELLS
    good = path.read_text()
    path.write_text(good + good.splitlines(keepends=True)[3])
    assert heatmap_error(folder, capsys).endswith("line 10: repeats the cell of line 4 (scratch eta=0.1 "
                                                  "lambda=0.0 seed=0)")
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert "cells.csv: not UTF-8 text" in heatmap_error(folder, capsys)
    path.write_text("")
    assert "cells.csv: the file is empty; expected the header framework,eta," in heatmap_error(folder, capsys)
    path.write_text(good[:-20])
    assert "cells.csv: the last line is cut short" in heatmap_error(folder, capsys)


CURVE_DAMAGE = [
    ("accuracy -1", 2, ",0.5\n", ",-1\n", "line 2: test_accuracy: -1 is out of range"),
    ("epoch gap", 3, ",2,1.0,", ",3,1.0,", "line 3: epoch 3 of scratch eta=0.01 lambda=0.0 seed=0 follows epoch 1"),
    ("off-grid lambda", 4, "scratch,0.01,0.0001", "scratch,0.01,0.5", "line 4: lmbda 0.5 is not on the run's grid"),
]


@pytest.mark.parametrize("what, line, old, new, message", CURVE_DAMAGE, ids=[c[0] for c in CURVE_DAMAGE])
def test_damaged_curves_file_is_refused_before_drawing(what, line, old, new, message, tmp_path, capsys):
    folder = make_run(tmp_path / "run")
    edit_line(folder / S.CURVES, line, old, new)
    err = heatmap_error(folder, capsys)
    assert err.startswith(f"xfw: error: {folder / S.CURVES}: {message}"), err


def test_missing_curves_are_named_by_the_heatmap(tmp_path, capsys):
    folder = make_run(tmp_path / "run")
    lines = (folder / S.CURVES).read_text().splitlines(keepends=True)
    (folder / S.CURVES).write_text("".join(lines[:-3]))
    err = heatmap_error(folder, capsys)
    assert f"{folder / S.CURVES}: the curves of 2 finished cells are missing or incomplete" in err
    os.remove(folder / S.CURVES)
    assert "the curves of 8 finished cells are missing" in heatmap_error(folder, capsys)


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "holds a JSON list; expected an object"),
    ('{"run": "x",\n "config": {"etas": [0.1', "line 2: not valid JSON"),
    ('{"config": [1]}', "config is a list; expected a JSON object"),
    ('{"config": {"etas": 0.1}}', "config: etas is 0.1; expected a list of float values"),
])
def test_damaged_manifest_is_refused(text, message, tmp_path, capsys):
    folder = make_run(tmp_path / "run")
    (folder / S.MANIFEST).write_text(text)
    err = heatmap_error(folder, capsys)
    assert err.startswith(f"xfw: error: {folder / S.MANIFEST}: {message}"), err
    (folder / S.MANIFEST).write_bytes(b"\x80\x81binary")
    assert "manifest.json: not UTF-8 text" in heatmap_error(folder, capsys)


def test_a_folder_without_config_hashes_still_reads_and_draws(tmp_path, capsys):
    folder = make_run(tmp_path / "old", hash_column=False)
    cells = S.read_cells(folder)
    assert len(cells) == 8 and (cells.config_hash == "").all()
    assert cli_main(["heatmap", str(folder)]) == 0
    assert (folder / "figures" / "test_accuracy_scratch.png").is_file()


def test_valid_folder_reads_back(tmp_path):
    folder = make_run(tmp_path / "run")
    cells, curves = S.read_cells(folder), S.read_curves(folder)
    assert len(cells) == 8 and (cells.config_hash == HASH).all() and len(curves) == 16
    assert json.loads((folder / S.MANIFEST).read_text())["config_hash"] == HASH
