"""The text report puts the diagnoses first (id, quantity, plain words with the fix), before
the table of numbers; the README example's bug (relu'(0) taken as 1) is named."""
import importlib.util
import os

from experiments.diagnose import ids
from test_check_layers import _loop_conv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Ids a student test here names first (counted by the diagnosis library's id coverage test).
COVERED = {ids.ACT_AT_ZERO}


def _example():
    spec = importlib.util.spec_from_file_location("check_student_conv",
                                                  os.path.join(ROOT, "examples", "check_student_conv.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.check_student_conv()


def test_readme_example_names_relu_derivative_at_zero_first():
    report = _example()
    d = report.diagnoses[0]
    assert (d.id, d.quantity) == (ids.ACT_AT_ZERO, "input gradient"), report
    assert "test z > 0, not z >= 0" in d.text


def test_student_relu_at_zero_is_named_and_the_correct_one_is_not():
    assert _loop_conv(bug="relu-derivative-at-zero").diagnoses[0].id == ids.ACT_AT_ZERO
    assert _loop_conv().diagnoses == []


def test_diagnoses_come_before_the_table():
    lines = str(_example()).splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.strip().startswith("diagnosis"))
    table = next(i for i, ln in enumerate(lines) if ln.strip().startswith("case "))
    assert head < table
    assert lines[head + 1].startswith("    [activation-derivative-at-zero] input gradient: your input gradient")
