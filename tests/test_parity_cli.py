"""``xfw parity``: the same matrix outside pytest, a stable JSON report,
exit status 1 on a failure and 2 on a bad option, skipped frameworks named."""
import json

import pytest

from experiments import cli
from experiments.parity import breakages as B
from experiments.parity.testing import require

SMALL = ["parity", "--parts", "layers,models", "--layers", "dense,flatten", "--arch", "course_ffnn",
         "--dtype", "float64"]


def run(capsys, tmp_path, *args):
    code = cli.main(SMALL + ["--out", str(tmp_path), "--name", "r"] + list(args))
    return code, capsys.readouterr()


def test_json_report_is_written_and_stable(capsys, tmp_path):
    require("torch"), require("keras")
    code, out = run(capsys, tmp_path, "--format", "json")
    assert code == 0
    doc = json.loads(out.out)
    assert doc == json.loads((tmp_path / "r.json").read_text())
    assert set(doc) == {"schema", "created", "parts", "dtypes", "frameworks", "archs", "layers", "skipped",
                        "results", "counts", "passed"}
    assert doc["schema"] == 1 and doc["passed"] is True and doc["skipped"] == []
    assert doc["parts"] == ["layers", "models"] and doc["archs"] == ["course_ffnn"] and doc["dtypes"] == ["float64"]
    assert doc["counts"] == {"compared": len(doc["results"]), "failed": 0}
    row = doc["results"][0]
    assert set(row) == {"case", "quantity", "framework", "reference", "max_abs", "max_rel", "index", "rtol",
                        "passed", "problem", "layer"}
    assert {r["framework"] for r in doc["results"]} == {"torch", "keras"}
    assert {(r["framework"], r["reference"]) for r in doc["results"]} == {("torch", "scratch"), ("keras", "scratch"),
                                                                         ("keras", "torch")}
    assert any(r["case"] == "course_ffnn-float64" and r["quantity"] == "layer 1 (Dense) kernel gradient"
               for r in doc["results"])
    assert all(r["case"].startswith(("dense-", "flatten-", "course_ffnn-")) for r in doc["results"])
    assert "PASSED" in out.err


@pytest.mark.parametrize("fmt,ext,head", [("table", "txt", "case  "), ("markdown", "md", "| case |")])
def test_table_and_markdown(capsys, tmp_path, fmt, ext, head):
    require("torch")
    code, out = run(capsys, tmp_path, "--format", fmt, "--frameworks", "torch")
    assert code == 0
    text = (tmp_path / f"r.{ext}").read_text()
    assert text.startswith(head) and text in out.out
    for column in ("quantity", "framework", "max abs error", "max rel error", "pass"):
        assert column in text.splitlines()[0]
    assert "dense-f13-u5-b1-float64" in text and "PASSED" in text


def test_a_failure_exits_1_and_names_case_and_quantity(capsys, tmp_path):
    require("torch")
    with B.get("dense-bias-gradient-mean").patch():
        code, out = run(capsys, tmp_path, "--frameworks", "torch", "--failures-only")
    assert code == 1
    rows = [line.split("  ") for line in out.out.splitlines()[2:] if "FAIL" in line and "float64" in line]
    cells = [[c.strip() for c in row if c.strip()] for row in rows]
    assert ["dense-f6-u5-b7-float64", "bias gradient", "torch"] in [c[:3] for c in cells]
    assert all("bias gradient" in c[1] for c in cells) and "FAILED" in out.out  # the bias only, nothing else


def test_missing_framework_is_skipped_by_name(capsys, tmp_path, monkeypatch):
    require("torch")
    import experiments.frameworks as F

    real = F.missing
    monkeypatch.setattr(F, "missing", lambda fw: "tensorflow" if fw == "keras" else real(fw))
    code, out = run(capsys, tmp_path, "--format", "json")
    doc = json.loads(out.out)
    assert doc["skipped"] == [{"framework": "keras", "reason": "the package 'tensorflow' is not installed"}]
    assert {r["framework"] for r in doc["results"]} == {"torch"} and code == 0
    code, out = run(capsys, tmp_path, "--frameworks", "keras")
    assert code == 1  # nothing compared: never a pass
    assert "keras: SKIPPED" in out.out and "nothing was compared" in out.out


@pytest.mark.parametrize("args,needle", [
    (["--arch", "resnet"], "--arch: unknown architecture 'resnet'; valid: course_cnn, course_ffnn, lenet"),
    (["--layers", "conv2d"], "--layers: unknown layer kind 'conv2d'; valid: conv, maxpool, avgpool, dense"),
    (["--dtype", "float16"], "--dtype: unknown dtype 'float16'; valid: float64, float32"),
    (["--frameworks", "jax"], "--frameworks: unknown framework 'jax'; valid: torch, keras"),
    (["--frameworks", "scratch"], "scratch is the reference"),
    (["--parts", "speed"], "--parts: unknown part 'speed'; valid: layers, losses, models, optimizers"),
    (["--format", "xml"], "--format: unknown format 'xml'; valid: table, json, markdown"),
    (["--parts", "optimizers", "--dtype", "float32"], "--dtype: the optimizer trajectories run in float64 only"),
])
def test_bad_options_list_the_valid_choices(capsys, tmp_path, args, needle):
    code = cli.main(["parity", "--out", str(tmp_path)] + args)
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
