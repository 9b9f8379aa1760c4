"""xfw train: the same options and output in every framework; bad options as one line."""
import re

import pytest

from experiments.cli import main


@pytest.mark.parametrize("framework", ["scratch", "keras", "torch"])
def test_train_prints_a_line_per_epoch_and_the_final_accuracies(framework, capsys):
    assert main(["train", "--framework", framework, "--epochs", "2", "--limit", "300", "--eta", "0.1"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^epoch +\d/2 +loss \d+\.\d{4} +train acc [01]\.\d{4} +test acc [01]\.\d{4}$", out,
                          flags=re.M)) == 2
    assert re.search(r"^final: train accuracy [01]\.\d{4}, test accuracy [01]\.\d{4}", out, flags=re.M)


def test_the_three_frameworks_print_the_same_numbers(capsys):
    lines = {}
    for fw in ("scratch", "keras", "torch"):
        main(["train", "--framework", fw, "--epochs", "2", "--limit", "300", "--dtype", "float64"])
        lines[fw] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert lines["scratch"] == lines["keras"] == lines["torch"]


@pytest.mark.parametrize("argv, message", [
    (["--eta", "-1"], "argument --eta: -1 must be a finite number > 0"),
    (["--eta", "abc"], "argument --eta: 'abc' is not a number"),
    (["--lmbda", "-0.1"], "argument --lmbda: -0.1 must be a finite number >= 0"),
    (["--epochs", "0"], "argument --epochs: 0 must be an integer > 0"),
    (["--arch", "vgg"], "--arch: unknown architecture 'vgg'; allowed: course_cnn, course_ffnn, lenet"),
    (["--framework", "jax"], "--framework: unknown framework 'jax'; allowed: scratch, keras, torch"),
    (["--optimizer", "lbfgs"], "--optimizer: unknown optimizer 'lbfgs'; allowed: sgd, momentum"),
    (["--dataset", "mnist"], "--data: the mnist data set needs --data PATH"),
    (["--dataset", "mnist", "--data", "/nonexistent/mnist.npz"], "/nonexistent/mnist.npz"),
    (["--batch-size", "5000"], "--batch-size: 5000 is larger than the 1437 training samples"),
    (["--data", "x.npz"], "--data: only the mnist data set reads a file"),
])
def test_bad_options_are_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main(["train"] + argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("option, value, message", [
    ("--arch", "resnet", "--arch: unknown architecture 'resnet'; allowed: course_cnn, course_ffnn, lenet"),
    ("--dtype", "float16", "--dtype: unknown dtype 'float16'; allowed: float32, float64"),
])
def test_one_bad_value_gets_one_message_from_every_command(option, value, message, capsys, tmp_path):
    """train, grid and parity share one check per option: the same words for the same mistake."""
    commands = {"train": ["train"], "grid": ["grid", "--out", str(tmp_path)], "parity": ["parity", "--out", str(tmp_path)]}
    seen = {}
    for name, argv in commands.items():
        assert main(argv + [option, value]) == 2
        seen[name] = capsys.readouterr().err.strip().splitlines()[-1]
    assert set(seen.values()) == {f"xfw: error: {message}"}, seen
