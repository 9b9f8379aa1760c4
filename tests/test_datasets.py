"""Tests of experiments.datasets: shapes, ranges, splits, determinism, MNIST file parsing
and the error messages (each must name the file or the option at fault)."""
from __future__ import annotations

import gzip
import re
import shutil
import struct

import numpy as np
import pytest

from experiments import datasets as ds
from experiments.datasets import DATASETS, MNIST_IDX_FILES, MNIST_NPZ_KEYS, Dataset


def _assert_conventions(d: Dataset, dtype=np.float64):
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        assert x.ndim == 4 and x.shape[1:] == d.input_shape
        assert x.dtype == np.dtype(dtype) and y.dtype == np.int64
        assert x.flags.c_contiguous and y.flags.c_contiguous
        assert y.shape == (x.shape[0],)
        assert np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 1
        assert y.min() >= 0 and y.max() < d.num_classes
    assert all(type(s) is int for s in d.input_shape)


# --------------------------------------------------------------------------- digits


def test_digits_shapes_and_range():
    d = ds.digits()
    _assert_conventions(d)
    assert d.name == "digits" and d.num_classes == 10 and d.input_shape == (1, 8, 8)
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    # 0..16 divided by 16: the values are multiples of 1/16 and reach 1
    both = np.concatenate([d.x_train.ravel(), d.x_test.ravel()])
    assert both.max() == 1.0 and both.min() == 0.0
    np.testing.assert_array_equal(both * 16, np.round(both * 16))
    assert "digits" in d.describe() and "(1437, 1, 8, 8)" in d.describe() and "10 classes" in d.describe()
    assert "\n" not in d.describe()


def test_digits_stratified():
    d = ds.digits()
    tr = np.bincount(d.y_train, minlength=10) / d.y_train.size
    te = np.bincount(d.y_test, minlength=10) / d.y_test.size
    assert np.abs(tr - te).max() < 0.01
    assert set(np.unique(d.y_test)) == set(range(10))


def test_digits_deterministic_per_seed():
    a, b, c = ds.digits(seed=3), ds.digits(seed=3), ds.digits(seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train)
    # same data, only split differently
    np.testing.assert_array_equal(np.sort(np.concatenate([a.y_train, a.y_test])),
                                  np.sort(np.concatenate([c.y_train, c.y_test])))


def test_digits_dtype_limit_test_size():
    d32 = ds.digits(dtype=np.float32)
    _assert_conventions(d32, np.float32)
    d64 = ds.digits()
    np.testing.assert_array_equal(d32.x_train, d64.x_train.astype(np.float32))  # exact: k/16
    small = ds.digits(limit=200, test_size=0.25)
    assert small.x_train.shape[0] + small.x_test.shape[0] == 200 and small.x_test.shape[0] == 50
    via_load = ds.load("digits", dtype="float32", seed=0, limit=200, test_size=0.25)
    np.testing.assert_array_equal(via_load.x_test, small.x_test.astype(np.float32))


def test_onehot():
    d = ds.digits(dtype=np.float32)
    oh = d.onehot(d.y_test)
    assert oh.shape == (d.y_test.size, 10) and oh.dtype == np.float32
    np.testing.assert_array_equal(oh.argmax(1), d.y_test)
    np.testing.assert_array_equal(oh.sum(1), 1)
    with pytest.raises(ValueError, match="onehot"):
        d.onehot(np.array([10]))


# --------------------------------------------------------------------------- synthetic


def test_synthetic_deterministic_and_balanced():
    a, b = ds.synthetic(seed=7), ds.synthetic(seed=7)
    _assert_conventions(a)
    for f in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.x_train, ds.synthetic(seed=8).x_train)
    counts = np.bincount(np.concatenate([a.y_train, a.y_test]), minlength=10)
    np.testing.assert_array_equal(counts, 20)
    np.testing.assert_array_equal(np.bincount(a.y_test, minlength=10), 4)
    assert a.x_train.shape == (160, 1, 8, 8) and a.x_test.shape == (40, 1, 8, 8)


def test_synthetic_options_and_learnable():
    d = ds.synthetic(n=90, input_shape=(3, 5, 4), num_classes=3, dtype=np.float32, seed=1, test_size=1 / 3)
    _assert_conventions(d, np.float32)
    assert d.input_shape == (3, 5, 4) and d.num_classes == 3 and d.x_test.shape[0] == 30
    d64 = ds.synthetic(n=90, input_shape=(3, 5, 4), num_classes=3, seed=1, test_size=1 / 3)
    np.testing.assert_array_equal(d.x_train, d64.x_train.astype(np.float32))
    # nearest class mean classifies the test set perfectly: the set is learnable
    s = ds.synthetic()
    means = np.stack([s.x_train[s.y_train == k].mean(0) for k in range(10)]).reshape(10, -1)
    dist = ((s.x_test.reshape(len(s.x_test), 1, -1) - means[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == s.y_test).mean() == 1.0
    assert ds.load("synthetic", limit=50).x_train.shape[0] + ds.load("synthetic", limit=50).x_test.shape[0] == 50


# --------------------------------------------------------------------------- mnist files


def _fake_mnist(n_train=30, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def _idx_bytes(arr: np.ndarray) -> bytes:
    magic = 0x00000800 | arr.ndim
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def _write_idx(folder, arrays, *, gz=False, dotted=None):
    folder.mkdir(parents=True, exist_ok=True)
    keys = ("x_train", "y_train", "x_test", "y_test")
    for key, name in zip(keys, MNIST_IDX_FILES):
        if dotted == "idx":  # the mirrors' spelling: train-images.idx3-ubyte
            name = name.replace("-idx", ".idx")
        elif dotted == "ubyte":  # train-images-idx3.ubyte
            stem, _, tail = name.rpartition("-")
            name = f"{stem}.{tail}"
        data = _idx_bytes(arrays[key])
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def _write_npz(path, arrays, drop=()):
    np.savez(path, **{k: v for k, v in arrays.items() if k not in drop})
    return path


def test_mnist_npz(tmp_path):
    arrays = _fake_mnist()
    d = ds.mnist(_write_npz(tmp_path / "mnist.npz", arrays))
    _assert_conventions(d)
    assert d.name == "mnist" and d.num_classes == 10 and d.input_shape == (1, 28, 28)
    assert d.x_train.shape == (30, 1, 28, 28) and d.x_test.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(d.x_train[:, 0], arrays["x_train"] / 255.0)
    np.testing.assert_array_equal(d.y_test, arrays["y_test"])
    d32 = ds.load("mnist", path=str(tmp_path / "mnist.npz"), dtype=np.float32)
    _assert_conventions(d32, np.float32)
    np.testing.assert_array_equal(d32.x_test, d.x_test.astype(np.float32))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dotted", [None, "idx", "ubyte"])
def test_mnist_idx_matches_npz(tmp_path, gz, dotted):
    arrays = _fake_mnist()
    ref = ds.mnist(_write_npz(tmp_path / "mnist.npz", arrays))
    folder = _write_idx(tmp_path / "idx", arrays, gz=gz, dotted=dotted)
    if dotted == "idx":
        assert (folder / ("train-images.idx3-ubyte" + (".gz" if gz else ""))).is_file()
    d = ds.mnist(folder)
    for f in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(d, f), getattr(ref, f))
        assert getattr(d, f).dtype == getattr(ref, f).dtype


def test_mnist_limit(tmp_path):
    arrays = _fake_mnist()
    d = ds.load("mnist", path=_write_idx(tmp_path, arrays), limit=12)
    assert d.x_train.shape[0] == 12 and d.x_test.shape[0] == 12 // 5
    np.testing.assert_array_equal(d.y_train, arrays["y_train"][:12])
    assert ds.mnist(tmp_path, limit=3).x_test.shape[0] == 1


# --------------------------------------------------------------------------- errors


def _m(path) -> str:
    return re.escape(str(path))


def test_error_missing_path(tmp_path):
    missing = tmp_path / "nope" / "mnist.npz"
    with pytest.raises(FileNotFoundError, match=_m(missing)) as exc:
        ds.mnist(missing)
    for name in MNIST_IDX_FILES + MNIST_NPZ_KEYS:
        assert name in str(exc.value)


def test_error_missing_idx_file(tmp_path):
    folder = _write_idx(tmp_path / "idx", _fake_mnist(), gz=True)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=_m(folder / "t10k-labels-idx1-ubyte")) as exc:
        ds.mnist(folder)
    for name in MNIST_IDX_FILES:
        assert name in str(exc.value)


def test_error_missing_npz_key(tmp_path):
    path = _write_npz(tmp_path / "mnist.npz", _fake_mnist(), drop=("y_test",))
    with pytest.raises(ValueError, match=_m(path) + ".*y_test") as exc:
        ds.mnist(path)
    for key in MNIST_NPZ_KEYS:
        assert key in str(exc.value)


def test_error_not_an_npz(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match=_m(path)):
        ds.mnist(path)


def test_error_bad_npz_shape(tmp_path):
    arrays = _fake_mnist()
    arrays["x_train"] = arrays["x_train"][:, :27]
    path = _write_npz(tmp_path / "mnist.npz", arrays)
    with pytest.raises(ValueError, match=_m(path) + ".*x_train"):
        ds.mnist(path)


def test_error_bad_magic(tmp_path):
    folder = _write_idx(tmp_path, _fake_mnist())
    target = folder / "train-labels-idx1-ubyte"
    data = bytearray(target.read_bytes())
    data[3] = 0x03  # an images magic in a labels file
    target.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=_m(target) + ".*magic.*0x00000803.*0x00000801"):
        ds.mnist(folder)


@pytest.mark.parametrize("gz", [False, True])
def test_error_truncated(tmp_path, gz):
    folder = _write_idx(tmp_path, _fake_mnist(), gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    target = folder / name
    if gz:
        target.write_bytes(gzip.compress(gzip.decompress(target.read_bytes())[:-100]))
    else:
        target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(ValueError, match=_m(target) + ".*truncated"):
        ds.mnist(folder)


def test_error_truncated_header_and_bad_gzip(tmp_path):
    folder = _write_idx(tmp_path / "a", _fake_mnist())
    (folder / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">I", 0x803) + b"\x00\x00")
    with pytest.raises(ValueError, match=_m(folder / "t10k-images-idx3-ubyte") + ".*truncated"):
        ds.mnist(folder)
    folder = _write_idx(tmp_path / "b", _fake_mnist(), gz=True)
    target = folder / "train-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:15])
    with pytest.raises(ValueError, match=_m(target)):
        ds.mnist(folder)


def test_error_wrong_dims(tmp_path):
    arrays = _fake_mnist()
    folder = _write_idx(tmp_path, arrays)
    (folder / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((10, 28, 27), np.uint8)))
    with pytest.raises(ValueError, match=_m(folder / "t10k-images-idx3-ubyte") + ".*28x27"):
        ds.mnist(folder)


def test_error_count_mismatch(tmp_path):
    arrays = _fake_mnist()
    folder = _write_idx(tmp_path / "idx", arrays)
    (folder / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(arrays["y_train"][:-1]))
    with pytest.raises(ValueError, match=_m(folder / "train-images-idx3-ubyte") + ".*30.*29"):
        ds.mnist(folder)
    arrays["y_test"] = arrays["y_test"][:-2]
    path = _write_npz(tmp_path / "mnist.npz", arrays)
    with pytest.raises(ValueError, match=_m(path) + ".*10 test images but 8 test labels"):
        ds.mnist(path)


def test_error_label_range(tmp_path):
    arrays = _fake_mnist()
    arrays["y_test"][0] = 10
    folder = _write_idx(tmp_path, arrays)
    with pytest.raises(ValueError, match=_m(folder / "t10k-labels-idx1-ubyte") + ".*0..9"):
        ds.mnist(folder)


def test_error_unknown_name():
    with pytest.raises(ValueError, match="'cifar'.*digits, mnist, synthetic"):
        ds.load("cifar")
    assert DATASETS == ("digits", "mnist", "synthetic")


def test_error_mnist_without_path():
    with pytest.raises(ValueError, match="path.*mnist.npz.*IDX"):
        ds.load("mnist")
    with pytest.raises(ValueError, match="path.*mnist.npz.*IDX"):
        ds.mnist(None)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, "int64", "bogus"])
@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_error_bad_dtype(name, dtype):
    with pytest.raises(TypeError, match=r"dtype: " + re.escape(repr(dtype)) + " is not supported; allowed: float32, float64"):
        ds.load(name, dtype=dtype)


def test_error_bad_dtype_mnist(tmp_path):
    with pytest.raises(TypeError, match="dtype"):
        ds.load("mnist", path=_write_npz(tmp_path / "m.npz", _fake_mnist()), dtype=np.float16)


def test_error_options():
    with pytest.raises(ValueError, match="limit"):
        ds.load("digits", limit=0)
    with pytest.raises(ValueError, match="test_size"):
        ds.load("digits", test_size=1.5)
    with pytest.raises(ValueError, match="path"):
        ds.load("digits", path="/tmp/x")
    with pytest.raises(ValueError, match="stratified split"):
        ds.digits(limit=15)
    with pytest.raises(ValueError, match="input_shape"):
        ds.synthetic(input_shape=(8, 8))


def test_dataset_validation():
    x = np.zeros((4, 1, 2, 2))
    y = np.arange(4)
    with pytest.raises(ValueError, match="y_test"):
        Dataset("t", x, y % 3, x, y, num_classes=3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Dataset("t", x + 2, y, x, y, num_classes=4)
    with pytest.raises(ValueError, match="NaN"):
        Dataset("t", x * np.nan, y, x, y, num_classes=4)
    d = Dataset("t", x, y.astype(np.int32), x, y, num_classes=4)
    assert d.y_train.dtype == np.int64
