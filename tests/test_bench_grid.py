"""The grid benchmark: the population executor timed before and after Keras alone, the
ratio from the mean of the two (a tiny grid; the baseline is replaced by a fixed time)."""
import pytest

from experiments.bench import grid as bench


def test_the_population_grid_is_timed_around_the_baseline_and_the_ratio_uses_the_mean(monkeypatch, capsys):
    monkeypatch.setattr(bench, "_baseline_in_subprocess", lambda *args: 100.0)
    data = {"arch": "course_cnn", "dataset": "synthetic", "input_shape": (1, 8, 8), "limit": 60, "batch_size": 16}
    result = bench.bench_grid(epochs=1, etas=(0.1,), lmbdas=(0.0, 0.01), frameworks=("scratch",),
                              executors=("population",), workers=1, progress=False, data=data)
    run = result["runs"]["population"]
    before, after = run["seconds_before_after"]
    assert before > 0 and after > 0 and run["seconds"] == pytest.approx((before + after) / 2)
    assert run["ratio"] == pytest.approx(run["seconds"] / 100.0) and result["keras_seconds"] == 100.0
    assert run["summary"].ok == 2
    out = capsys.readouterr().out
    assert "mean of before and after Keras alone" in out and "x the course's Keras time" in out
