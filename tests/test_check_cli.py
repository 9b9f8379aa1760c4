"""xfw check FILE.py: exit codes, -k, JSON schema 1, --out; the README example runs."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from experiments.check import run_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD = textwrap.dedent('''
    import numpy as np
    from experiments import check
    from scratch import spec as S

    print("imported")

    def check_identity():
        print("inside a check")
        return check.layer(S.Activation("identity"), input_shape=(3,), forward=lambda x: x, backward=lambda g: g)

    def check_pair():
        return [check.layer(S.Activation("relu"), input_shape=(2, 3, 3), forward=lambda x: np.maximum(x, 0)),
                check.layer(S.Activation("tanh"), input_shape=(3,), forward=lambda x: x)]

    def check_raises():
        raise KeyError("oops")
    ''')


@pytest.fixture
def checks(tmp_path):
    p = tmp_path / "checks.py"
    p.write_text(GOOD)
    return str(p)


def test_text_output_and_exit_status(checks, capsys):
    assert run_file(checks, k="identity") == 0
    out = capsys.readouterr().out
    assert "== check_identity" in out and "PASSED" in out and "inside a check" in out
    assert run_file(checks) == 1  # check_pair[1] is wrong, check_raises raised
    out = capsys.readouterr().out
    assert "== check_pair[0]" in out and "== check_pair[1]" in out and "KeyError" in out


def test_json_is_schema_1_and_has_no_prints(checks, capsys, tmp_path):
    out_dir = tmp_path / "out"
    assert run_file(checks, fmt="json", out=str(out_dir)) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == 1
    names = [r["name"] for r in doc["reports"]]
    assert names == ["check_identity", "check_pair[0]", "check_pair[1]", "check_raises"]
    first = doc["reports"][0]
    assert first["passed"] is True and {"quantity", "framework", "max_abs", "max_rel", "rtol", "passed"} <= set(
        first["rows"][0])
    assert doc["reports"][3]["diagnoses"][0]["id"] == "raised"
    assert set(doc["reports"][3]["diagnoses"][0]) == {"id", "quantity", "text"}
    assert (out_dir / "check.json").exists() and (out_dir / "check_identity.json").exists()


@pytest.mark.parametrize("make, word", [
    (lambda d: str(d / "missing.py"), "no such file"),
    (lambda d: (d / "empty.py").write_text("x = 1\n") and str(d / "empty.py"), "no check_ function"),
    (lambda d: (d / "syntax.py").write_text("def check_x(:\n") and str(d / "syntax.py"), "SyntaxError"),
    (lambda d: (d / "usage.py").write_text(
        "from experiments import check\nfrom scratch import spec as S\n"
        "def check_x():\n    return check.layer(S.Dense(2), input_shape=(3,), forward=abs, input_layout='n z')\n")
     and str(d / "usage.py"), "unknown axis 'z'"),
    (lambda d: (d / "ret.py").write_text("def check_x():\n    return 3\n") and str(d / "ret.py"), "returned int"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, make, word):
    assert run_file(make(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xfw: error:") and word in err and len(err.splitlines()) == 1, err


def test_no_match_for_k(checks, capsys):
    assert run_file(checks, k="nothing") == 2
    assert "no check_ function whose name contains 'nothing'" in capsys.readouterr().err


def test_picture_of_an_image_shaped_error(tmp_path, capsys):
    p = tmp_path / "img.py"
    p.write_text("from experiments import check\nfrom scratch import spec as S\n"
                 "def check_img():\n    return check.layer(S.Activation('identity'), input_shape=(1, 4, 5), "
                 "forward=lambda x: x * 1.5)\n")
    assert run_file(str(p), out=str(tmp_path / "o")) == 1
    assert (tmp_path / "o" / "check_img-output.png").stat().st_size > 1000


def test_xfw_check_command_on_the_readme_example():
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "experiments.cli", "check", os.path.join(ROOT, "examples",
                        "check_student_conv.py"), "--format", "json"], capture_output=True, text=True, env=env)
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    bad = {row["quantity"] for row in doc["reports"][0]["rows"] if not row["passed"]}
    assert bad == {"input gradient"}
    first = doc["reports"][0]["diagnoses"][0]
    assert (first["id"], first["quantity"]) == ("activation-derivative-at-zero", "input gradient")
    assert "z > 0, not z >= 0" in first["text"]
