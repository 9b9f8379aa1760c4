"""Heatmaps and the run report, drawn from a fake run folder with known numbers."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import QuadMesh

from experiments.grid import figures, labels, report, store, tables

ETAS = [1e-5, 1e-3, 1e-1]
LMBDAS = [1e-4, 1e-2, 1.0]
EPOCHS = 3
COLUMNS = ["framework", "eta", "lmbda", "seed", "epochs", "train_loss", "train_accuracy",
           "test_loss", "test_accuracy", "status", "diverged_epoch", "seconds", "error"]
CURVE_COLUMNS = ["framework", "eta", "lmbda", "seed", "epoch", "loss", "train_loss",
                 "train_accuracy", "test_loss", "test_accuracy"]
DIVERGED = ("torch", 2, 0)   # torch diverged at eta=1e-1, lambda=1e-4
FAILED = ("keras", 0, 2)     # keras failed at eta=1e-5, lambda=1
KERAS_OFF = (1, 1)           # keras is 0.2 above scratch here: a disagreement


def scratch_test(i, j):
    return 0.5 + 0.1 * i + 0.01 * j      # every cell distinct; best at (2, 2)


def expected_test(framework, i, j):
    base = scratch_test(i, j)
    if framework == "keras":
        return base + (0.2 if (i, j) == KERAS_OFF else 0.001 * (i + j))
    if framework == "torch":
        return base - 0.002 * j
    return base


def _cell(framework, i, j, seed, test_acc, status="ok"):
    ok = status == "ok"
    return {
        "framework": framework, "eta": ETAS[i], "lmbda": LMBDAS[j], "seed": seed,
        "epochs": EPOCHS if status != "diverged" else 2,
        "train_loss": 1.0 - test_acc if ok else (math.nan if status == "diverged" else ""),
        "train_accuracy": test_acc + 0.03 if ok else "",
        "test_loss": 1.1 - test_acc if ok else "", "test_accuracy": test_acc if ok else "",
        "status": status, "diverged_epoch": 2 if status == "diverged" else "",
        "seconds": 1.5, "error": "RuntimeError: out of memory" if status == "failed" else "",
    }


def make_run(path, frameworks=("scratch", "keras", "torch"), *, equal=False):
    """A 3x3 run. scratch has two seeds (+-0.02 around the expected value)."""
    path.mkdir(parents=True, exist_ok=True)
    rows, curves = [], []
    for framework in frameworks:
        seeds = (0, 1) if framework == "scratch" else (0,)
        for i in range(len(ETAS)):
            for j in range(len(LMBDAS)):
                value = scratch_test(i, j) if equal else expected_test(framework, i, j)
                status = "ok"
                if not equal and (framework, i, j) == DIVERGED:
                    status = "diverged"
                if not equal and (framework, i, j) == FAILED:
                    status = "failed"
                for seed in seeds:
                    offset = (-0.02 if seed == 0 else 0.02) if len(seeds) > 1 else 0.0
                    rows.append(_cell(framework, i, j, seed, value + offset, status))
                    if status == "failed":
                        continue
                    for epoch in range(1, (EPOCHS if status == "ok" else 2) + 1):
                        loss = (2.0 / epoch) * (1 + i) if status == "ok" else (math.inf if epoch == 2 else 5.0)
                        curves.append({"framework": framework, "eta": ETAS[i], "lmbda": LMBDAS[j],
                                       "seed": seed, "epoch": epoch, "loss": loss, "train_loss": loss,
                                       "train_accuracy": value * epoch / EPOCHS,
                                       "test_loss": loss * 1.1, "test_accuracy": value * epoch / EPOCHS})
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path / "cells.csv", index=False)
    pd.DataFrame(curves, columns=CURVE_COLUMNS).to_csv(path / "curves.csv", index=False)
    manifest = {"run": path.name,
                "config": {"frameworks": list(frameworks), "etas": ETAS, "lmbdas": LMBDAS,
                           "epochs": EPOCHS, "arch": "course_cnn", "batch_size": 100},
                "versions": {"numpy": "9.9.9", "torch": "2.13.0"}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = make_run(tmp_path_factory.mktemp("runs") / "fake")
    md = report.write_report(path, margin=0.05, dpi=40)
    return path, md


@pytest.fixture(scope="module")
def cells(run):
    return store.read_cells(run[0])


def _expected_table(framework):
    table = np.array([[expected_test(framework, i, j) for j in range(3)] for i in range(3)])
    for name, i, j in (DIVERGED, FAILED):
        if name == framework:
            table[i, j] = np.nan
    return table


def _heatmap_axes(figure):
    return {ax.get_label().split(":", 1)[1]: ax for ax in figure.axes if ax.get_label().startswith("heatmap:")}


def _mesh(ax):
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1
    return meshes[0]


def _cell_texts(ax):
    """{(row, column): text} of every text drawn in a cell of a heatmap axis."""
    out = {}
    for text in ax.texts:
        x, y = text.get_position()
        out[(int(y - 0.5), int(x - 0.5))] = text.get_text()
    return out


# --------------------------------------------------------------------------- tables

def test_grid_table_orientation_mean_over_seeds_and_nan(cells):
    for framework in ("scratch", "keras", "torch"):
        table = tables.grid_table(cells, framework, "test_accuracy")
        assert list(table.index) == ETAS and list(table.columns) == LMBDAS  # row i = ETAS[i]
        np.testing.assert_allclose(table.to_numpy(), _expected_table(framework), rtol=0, atol=1e-12)
    # scratch: mean of two seeds at +-0.02; train accuracy = test + 0.03
    train = tables.grid_table(cells, "scratch", "train_accuracy")
    np.testing.assert_allclose(train.to_numpy(), _expected_table("scratch") + 0.03, atol=1e-12)
    status = tables.status_table(cells, "torch")
    assert status.iat[2, 0] == "diverged" and (status.to_numpy() == "diverged").sum() == 1
    assert tables.status_table(cells, "keras").iat[0, 2] == "failed"


def test_grid_table_diverged_if_any_seed_diverged():
    frame = pd.DataFrame([
        _cell("scratch", 0, 0, 0, 0.6), _cell("scratch", 0, 0, 1, 0.7, "diverged"),
        _cell("scratch", 0, 1, 0, 0.6), _cell("scratch", 0, 1, 1, 0.8),
    ], columns=COLUMNS)
    for column in ("train_accuracy", "test_accuracy", "train_loss", "test_loss"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    table = tables.grid_table(frame, "scratch", "test_accuracy")
    assert np.isnan(table.iat[0, 0]) and table.iat[0, 1] == pytest.approx(0.7)
    assert tables.status_table(frame, "scratch").iat[0, 0] == "diverged"
    assert tables.grid_table(frame, "keras", "test_accuracy").isna().all().all()


def test_partial_run_keeps_the_manifest_grid_and_marks_missing_cells(cells):
    partial = cells[~((cells["framework"] == "scratch") & (cells["eta"] == ETAS[1]))]
    manifest = {"config": {"etas": ETAS + [10.0], "lmbdas": LMBDAS, "frameworks": ["torch", "scratch"]}}
    etas, lmbdas = tables.grid_axes(partial, manifest)
    assert etas == ETAS + [10.0] and lmbdas == LMBDAS
    assert tables.framework_order(partial, manifest) == ["torch", "scratch", "keras"]
    table = tables.grid_table(partial, "scratch", "test_accuracy", etas=etas, lmbdas=lmbdas)
    assert table.shape == (4, 3) and table.iloc[[1, 3]].isna().all().all()
    status = tables.status_table(partial, "scratch", etas=etas, lmbdas=lmbdas)
    assert (status.iloc[[1, 3]] == "missing").all().all() and (status.iloc[[0, 2]] == "ok").all().all()


def test_csv_tables_beside_figures_equal_grid_table(run, cells):
    path, _ = run
    figures = path / "figures"
    for framework in ("scratch", "keras", "torch"):
        for metric in ("train_accuracy", "test_accuracy"):
            written = pd.read_csv(figures / f"{metric}_{framework}.csv", index_col=0)
            expected = tables.grid_table(cells, framework, metric)
            np.testing.assert_array_equal(written.index.to_numpy(float), expected.index.to_numpy(float))
            np.testing.assert_array_equal(written.columns.astype(float), expected.columns.to_numpy(float))
            np.testing.assert_array_equal(written.to_numpy(float), expected.to_numpy(float))  # exact, NaN in place
    for other in ("keras", "torch"):
        diff = pd.read_csv(figures / f"test_accuracy_diff_{other}_minus_scratch.csv", index_col=0)
        np.testing.assert_allclose(diff.to_numpy(float), _expected_table(other) - _expected_table("scratch"),
                                   atol=1e-12)
    assert diff.iat[1, 1] == pytest.approx(-0.002)  # torch - scratch at (1, 1)


def test_every_figure_written_as_png_and_svg(run):
    path, _ = run
    figures = path / "figures"
    stems = ["curves"] + [f"{m}_{s}" for m in ("train_accuracy", "test_accuracy")
                          for s in ("scratch", "keras", "torch", "side_by_side",
                                    "diff_keras_minus_scratch", "diff_torch_minus_scratch")]
    for stem in stems:
        for suffix in ("png", "svg"):
            file = figures / f"{stem}.{suffix}"
            assert file.is_file() and file.stat().st_size > 1000, file
    assert (figures / "test_accuracy_scratch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (figures / "test_accuracy_side_by_side.svg").read_text()[:2000]


# --------------------------------------------------------------------------- figures

def test_side_by_side_one_colour_scale_and_numbers_shown(cells):
    figure = figures.side_by_side_figure(cells, "test_accuracy", dpi=40)
    axes = _heatmap_axes(figure)
    assert list(axes) == ["scratch", "keras", "torch"]
    clims = {name: _mesh(ax).get_clim() for name, ax in axes.items()}
    assert len(set(clims.values())) == 1                        # one colour scale
    norms = {id(_mesh(ax).norm) for ax in axes.values()}
    low, high = next(iter(clims.values()))
    finite = np.concatenate([_expected_table(f).ravel() for f in axes])
    assert low == pytest.approx(np.nanmin(finite)) and high == pytest.approx(np.nanmax(finite))
    assert sum(ax.get_label() == "colorbar" for ax in figure.axes) == 1   # one colour bar
    assert len(norms) == 3
    for name, ax in axes.items():
        table = tables.grid_table(cells, name, "test_accuracy")
        texts = _cell_texts(ax)
        for i in range(3):
            for j in range(3):
                value = table.iat[i, j]
                if np.isfinite(value):
                    assert texts[(i, j)] == f"{value:.3f}"
        # eta down the y axis (smallest on top), lambda across, as powers of ten
        assert [t.get_text() for t in ax.get_xticklabels()] == ["$10^{-4}$", "$10^{-2}$", "$10^{0}$"]
        if name == "scratch":
            assert [t.get_text() for t in ax.get_yticklabels()] == ["$10^{-5}$", "$10^{-3}$", "$10^{-1}$"]
            assert ax.get_ylim()[0] > ax.get_ylim()[1]  # inverted: row 0 at the top
    assert _cell_texts(axes["torch"])[(2, 0)] == "div"
    assert _cell_texts(axes["keras"])[(0, 2)] == "fail"
    assert any(p.get_gid() == "diverged" and p.get_hatch() for p in axes["torch"].patches)
    assert np.ma.getmaskarray(_mesh(axes["torch"]).get_array())[2, 0]
    assert axes["scratch"].get_title() == "scratch (mean over 2 seeds)" and axes["keras"].get_title() == "keras"


def test_single_heatmap_title_and_course_style(cells):
    figure = figures.heatmap_figure(cells, "scratch", "train_accuracy", dpi=40)
    ax = _heatmap_axes(figure)["scratch"]
    assert "scratch" in ax.get_title() and "train accuracy" in ax.get_title()
    assert "mean over 2 seeds" in ax.get_title()
    assert _mesh(ax).cmap.name == "viridis"
    assert ax.get_ylabel() == r"$\eta$" and ax.get_xlabel() == r"$\lambda$"


def test_difference_map_values_symmetric_and_marked(cells):
    figure = figures.difference_figure(cells, "keras", "test_accuracy", margin=0.05, dpi=40)
    ax = _heatmap_axes(figure)["keras-scratch"]
    mesh = _mesh(ax)
    low, high = mesh.get_clim()
    assert low == pytest.approx(-high) and high == pytest.approx(0.2)
    diff = _expected_table("keras") - _expected_table("scratch")
    texts = _cell_texts(ax)
    for i in range(3):
        for j in range(3):
            if np.isfinite(diff[i, j]):
                assert texts[(i, j)] == f"{diff[i, j]:+.3f}"
    assert texts[(0, 2)] == "fail\nkeras"
    assert [p for p in ax.patches if p.get_gid() == "disagree"][0].get_xy() == pytest.approx((1.04, 1.04))
    torch = figures.difference_figure(cells, "torch", "test_accuracy", margin=0.05, dpi=40)
    torch_ax = _heatmap_axes(torch)["torch-scratch"]
    assert _cell_texts(torch_ax)[(2, 0)] == "div\ntorch"
    assert _mesh(torch_ax).get_clim() == pytest.approx((-0.05, 0.05))   # the margin is the floor
    table = tables.difference_table(cells, "keras", "test_accuracy")
    np.testing.assert_allclose(table.to_numpy(), diff, atol=1e-12)


def test_curves_figure_has_one_panel_per_framework(run, cells):
    curves = store.read_curves(run[0])
    figure = figures.curves_figure(curves, cells, top=2, dpi=40)
    loss_axes = [ax for ax in figure.axes if ax.get_label().startswith("loss:")]
    assert [ax.get_label() for ax in loss_axes] == ["loss:scratch", "loss:keras", "loss:torch"]
    assert all(ax.get_yscale() == "log" for ax in loss_axes)
    assert all(len(ax.lines) == 2 * 2 for ax in loss_axes)   # 2 cells, train and test loss


def test_curves_compare_the_same_quantity_and_the_legend_means_one_thing(run, cells):
    curves = store.read_curves(run[0])
    curves["loss"] = curves["train_loss"] + 100.0  # the penalised running objective: never drawn
    figure = figures.curves_figure(curves, cells, top=1, dpi=40)
    scratch_loss = next(ax for ax in figure.axes if ax.get_label() == "loss:scratch")
    scratch_acc = next(ax for ax in figure.axes if ax.get_label() == "accuracy:scratch")
    lines = {line.get_gid(): line for line in scratch_loss.lines + scratch_acc.lines}
    assert set(lines) == {"train_loss", "test_loss", "train_accuracy", "test_accuracy"}
    assert lines["train_loss"].get_linestyle() == lines["train_accuracy"].get_linestyle() == "-"
    assert lines["test_loss"].get_linestyle() == lines["test_accuracy"].get_linestyle() == "--"
    assert np.nanmax(lines["train_loss"].get_ydata()) < 100  # train_loss, the data loss, not "loss"
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend[-2:] == ["solid: training set", "dashed: test set"]


def test_pow10_labels():
    assert labels.pow10_label(1e-5) == "$10^{-5}$"
    assert labels.pow10_label(10.0) == "$10^{1}$"
    assert labels.pow10_label(np.logspace(-5, 1, 7)[2]) == "$10^{-3}$"
    assert labels.pow10_label(2.5e-3) == r"$2.5\times10^{-3}$"
    assert labels.pow10_label(0.0) == "0"


# --------------------------------------------------------------------------- report

def test_report_best_cells_counts_and_disagreements(run):
    path, md = run
    assert md == path / "report.md"
    text = md.read_text()
    assert "fake" in text and "course_cnn" in text and "9.9.9" in text
    # best cell: scratch and torch at eta=1e-1, lambda=1 (row 2, column 2); keras where it is 0.2 above
    best = report.best_cells(store.read_cells(path))
    best_at = {"scratch": (2, 2), "keras": KERAS_OFF, "torch": (2, 2)}
    section = text.split("## Best cell per framework", 1)[1].split("\n## ", 1)[0]
    for framework, (i, j) in best_at.items():
        assert (best.loc[framework, "eta"], best.loc[framework, "lmbda"]) == (ETAS[i], LMBDAS[j])
        value = expected_test(framework, i, j)
        row = f"| {framework} | {ETAS[i]:g} | {LMBDAS[j]:g} | {value + 0.03:.4f} | {value:.4f} | {EPOCHS} |"
        assert row in section, row
    assert "(figures/test_accuracy_side_by_side.png)" in text
    assert "(figures/test_accuracy_diff_torch_minus_scratch.png)" in text
    section = text.split("## Where the frameworks disagree", 1)[1].split("\n## ", 1)[0]
    rows = [l for l in section.splitlines() if l.startswith("| keras") or l.startswith("| torch")]
    assert len(rows) == 2
    assert "| 0.001 | 0.01 |" in rows[0] and "0.6100" in rows[0] and "0.8100" in rows[0] and "+0.2000" in rows[0]
    assert "| 0.1 | 0.0001 |" in rows[1] and "torch diverged, scratch did not" in rows[1]
    counts = report.status_counts(store.read_cells(path))
    assert counts.loc["torch", "diverged"] == 1 and counts.loc["keras", "failed"] == 1
    assert counts.loc["scratch", "ok"] == 18
    assert "RuntimeError: out of memory" in text


def test_report_says_none_disagree_and_skips_absent_frameworks(tmp_path):
    path = make_run(tmp_path / "equal", frameworks=("scratch", "keras"), equal=True)
    md = report.write_report(path, margin=0.05, dpi=40)
    text = md.read_text()
    section = text.split("## Where the frameworks disagree", 1)[1]
    assert "No cell disagrees" in section
    assert "| torch |" not in text
    assert not list((path / "figures").glob("*torch*"))
    assert (path / "figures" / "test_accuracy_diff_keras_minus_scratch.png").is_file()



def test_draw_run_paths_no_leak_and_report_reuses_current_figures(tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    path = make_run(tmp_path / "small", frameworks=("scratch",))
    drawn = figures.draw_run(path, dpi=40)
    assert plt.get_fignums() == before                            # no figure left behind
    assert set(drawn) >= {"test_accuracy_scratch.png", "test_accuracy_scratch.svg",
                          "test_accuracy_scratch.csv", "curves.png", "curves.svg"}
    assert all(p.is_file() and p.parent == path / "figures" for p in drawn.values())
    assert not any("diff" in name for name in drawn)             # no other framework: no difference map
    png = path / "figures" / "test_accuracy_scratch.png"
    before_ns = png.stat().st_mtime_ns
    assert figures.drawn_figures(path) == drawn
    assert figures.drawn_figures(path, margin=0.1) is None       # another margin: draw again
    report.write_report(path, dpi=40)
    assert png.stat().st_mtime_ns == before_ns                    # reused, not drawn twice
    cells = pd.read_csv(path / "cells.csv")
    cells.loc[0, "test_accuracy"] = 0.99
    cells.to_csv(path / "cells.csv", index=False)
    assert figures.drawn_figures(path) is None                   # cells changed: stale
    text = report.write_report(path, dpi=40).read_text()
    table = pd.read_csv(path / "figures" / "test_accuracy_scratch.csv", index_col=0)
    assert table.iat[0, 0] == pytest.approx((0.99 + scratch_test(0, 0) + 0.02) / 2)
    assert "Only `scratch` is in this run" in text
