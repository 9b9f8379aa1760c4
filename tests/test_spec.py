"""The architecture spec: normalisation, validation and the registry."""
import ast
import pathlib

import pytest

from scratch import architectures, spec as S


def test_spec_module_imports_no_numpy():
    tree = ast.parse(pathlib.Path(S.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "numpy" not in imported


def test_normalisation():
    c = S.Conv2D(4, 3, strides=2, padding="same", activation="relu")
    assert c.kernel_size == (3, 3) and c.strides == (2, 2) and c.activation == S.Activation("relu")
    p = S.MaxPool2D(3)
    assert p.pool_size == (3, 3) and p.strides == (3, 3)
    assert S.AvgPool2D((2, 3), strides=1).strides == (1, 1)
    assert S.Activation("leaky_relu", 0.1).negative_slope == 0.1
    assert S.Dense(5).activation is None


@pytest.mark.parametrize("make, match", [
    (lambda: S.Conv2D(0), "Conv2D: invalid filters=0"),
    (lambda: S.Conv2D(3, (0, 3)), "kernel_size"),
    (lambda: S.Conv2D(3, 3, strides=(1, 2, 3)), "strides"),
    (lambda: S.Conv2D(3, 3, padding="full"), "padding='full'; allowed: valid, same"),
    (lambda: S.Conv2D(3, 3, activation="gelu"), "activation='gelu'"),
    (lambda: S.Dense(-1), "Dense: invalid units=-1"),
    (lambda: S.Dense(True), "units"),
    (lambda: S.Dropout(-0.1), "Dropout: invalid rate=-0.1"),
    (lambda: S.Dropout(1.0), "rate"),
    (lambda: S.Activation("swish"), "Activation: invalid name='swish'"),
    (lambda: S.Activation("leaky_relu", -1.0), "negative_slope"),
    (lambda: S.MaxPool2D(0), "MaxPool2D: invalid pool_size=0"),
    (lambda: S.AvgPool2D(2, padding="SAME"), "AvgPool2D: invalid padding"),
])
def test_invalid_values_fail_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_spec_layers_are_frozen():
    with pytest.raises(Exception):
        S.Dense(3).units = 4


def test_registry():
    assert {"course_cnn", "course_ffnn", "lenet"} <= set(architectures.names())
    cnn = architectures.get("course_cnn")
    assert cnn[0] == S.Conv2D(10, (3, 3), activation="relu")
    assert isinstance(cnn[1], S.MaxPool2D) and isinstance(cnn[2], S.Flatten)
    assert cnn[3] == S.Dense(50, activation="relu") and cnn[4] == S.Dense(10, activation="softmax")
    lenet = architectures.get("lenet")
    assert any(getattr(l, "padding", None) == "same" for l in lenet)
    assert any(getattr(l, "strides", (1, 1)) != (1, 1) and not isinstance(l, (S.MaxPool2D, S.AvgPool2D)) for l in lenet)
    with pytest.raises(KeyError, match="unknown architecture 'vgg'; registered: course_cnn"):
        architectures.get("vgg")


def test_validate_rejects_non_layers():
    with pytest.raises(TypeError, match="layer 1: 'relu' is not a spec layer"):
        S.validate([S.Flatten(), "relu"])
    with pytest.raises(ValueError, match="empty"):
        S.validate([])
