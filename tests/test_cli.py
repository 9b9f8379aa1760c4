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
    assert len(err) == 1 and err[0].startswith("xfw: error: ") and message in err[0], err


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


def one_error(argv, capsys):
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors exit directly, in one line too
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("xfw: error: "), (code, err)
    return err[0][len("xfw: error: "):]


def test_a_repeated_option_is_refused_or_accumulated(capsys, tmp_path):
    from experiments.cli.grid import config_from_args
    from experiments.cli.main import build_parser

    assert one_error(["train", "--eta", "0.1", "--eta", "0.2"], capsys) == (
        "argument --eta: given twice (the second time 0.2); give it once")
    assert one_error(["grid", "--epochs", "2", "--epochs", "3", "--out", str(tmp_path)], capsys).startswith(
        "argument --epochs: given twice")
    args = build_parser().parse_args(["grid", "--eta", "0.1", "--eta", "0.2,0.3", "--seeds", "1", "--seeds", "2"])
    config = config_from_args(args)
    assert config.etas == (0.1, 0.2, 0.3) and config.seeds == (1, 2)
    assert not hasattr(args, "_xfw_seen")


def test_one_list_syntax_in_every_command():
    from experiments import options
    from experiments.cli.main import build_parser

    parser = build_parser()
    for command in ("grid", "parity", "bench"):
        spaced = parser.parse_args([command, "--frameworks", "torch", "keras"]).frameworks
        commas = parser.parse_args([command, "--frameworks", "torch,keras"]).frameworks
        assert options.frameworks(spaced) == options.frameworks(commas) == ("torch", "keras"), command


@pytest.mark.parametrize("toml, message", [
    (b"\xff\xfe\x00\x01", "is not UTF-8 text (byte 0); expected a TOML file"),
    (b"out = 5\n", "out: 5 is not allowed; expected a string"),
    (b"epochs = \"many\"\n", "epochs: 'many' is not allowed; expected a positive integer"),
    (b'loss = "hinge"\n', "loss (a --config field): unknown loss 'hinge'; allowed: categorical_crossentropy"),
    (b"epochs = [\n", "is not valid TOML"),
])
def test_config_file_errors_name_the_file_and_the_field(toml, message, capsys, tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(toml)
    err = one_error(["grid", "--config", str(path), "--out", str(tmp_path / "out"), "--no-progress"], capsys)
    assert message in err and (str(path) in err or err.startswith("loss")), err
    assert not (tmp_path / "out").exists()


def test_grid_option_errors_about_files_and_addresses(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    common = ["grid", "--frameworks", "scratch", "--limit", "50", "--batch-size", "10", "--no-progress"]
    assert one_error(common + ["--out", str(tmp_path / "afile")], capsys) == (
        f"--out: {tmp_path / 'afile'} is a file; expected a folder for the results (it is created if missing)")
    err = one_error(common + ["--out", str(tmp_path), "--executor", "dask", "--scheduler", "http://x"], capsys)
    assert err.startswith("--scheduler: 'http://x' is not a Dask scheduler address; expected SCHEME://HOST:PORT")
