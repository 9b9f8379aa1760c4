"""MNIST from every local format people have: CSV exports, two IDX files, a torchvision
root; a file in no known format is named with the list of formats."""
import gzip
import os

import numpy as np
import pytest

from experiments import datasets

RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, (50, 28, 28), dtype=np.uint8)
Y = np.arange(50) % 10


def write_idx(path, array):
    magic = 0x0803 if array.ndim == 3 else 0x0801
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def write_csv(path, x, y, header=True):
    rows = np.column_stack([y, x.reshape(len(x), -1)])
    head = "label," + ",".join(f"{i}x{j}" for i in range(1, 29) for j in range(1, 29)) + "\n" if header else ""
    path.write_text(head + "\n".join(",".join(map(str, r)) for r in rows) + "\n")


def test_csv_files_with_and_without_header(tmp_path):
    write_csv(tmp_path / "mnist_train.csv", X[:40], Y[:40])
    write_csv(tmp_path / "mnist_test.csv", X[40:], Y[40:], header=False)
    pair = datasets.mnist(f"{tmp_path / 'mnist_train.csv'},{tmp_path / 'mnist_test.csv'}")
    folder = datasets.mnist(tmp_path)
    for d in (pair, folder):
        np.testing.assert_array_equal(d.x_train[:, 0], X[:40] / 255.0)
        np.testing.assert_array_equal(d.y_test, Y[40:])
    write_csv(tmp_path / "all.csv", X, Y)
    single = datasets.mnist(tmp_path / "all.csv", seed=1)  # no test set of its own: 80/20, stratified
    assert single.x_train.shape == (40, 1, 28, 28) and single.x_test.shape == (10, 1, 28, 28)
    assert sorted(single.y_test.tolist()) == list(range(10))


def test_two_idx_files_in_either_order_and_a_torchvision_root(tmp_path):
    write_idx(tmp_path / "images-idx3-ubyte", X)
    write_idx(tmp_path / "labels-idx1-ubyte.gz", Y)
    a = datasets.mnist(f"{tmp_path / 'images-idx3-ubyte'},{tmp_path / 'labels-idx1-ubyte.gz'}")
    b = datasets.mnist(f"{tmp_path / 'labels-idx1-ubyte.gz'},{tmp_path / 'images-idx3-ubyte'}")
    assert a.fingerprint() == b.fingerprint() and a.x_train.shape[0] == 40
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, array in zip(datasets.MNIST_IDX_FILES, (X[:40], Y[:40], X[40:], Y[40:])):
        write_idx(raw / name, array)
    for root in (tmp_path / "root", tmp_path / "root" / "MNIST", raw):
        d = datasets.mnist(root)
        np.testing.assert_array_equal(d.y_train, Y[:40])


def test_unknown_and_single_idx_files_say_what_is_allowed(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", X)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte is a single IDX images file; give its images "
                                         r"and labels files together as IMAGES,LABELS"):
        datasets.mnist(tmp_path / "train-images-idx3-ubyte")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02\xff" * 10)
    with pytest.raises(ValueError, match=r"blob.bin is in no known format; expected one of: a Keras-layout "
                                         r"mnist.npz.*a CSV file \(label, then 784 pixels"):
        datasets.mnist(tmp_path / "blob.bin")
    (tmp_path / "short.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match=r"short.csv has 3 columns; expected 785"):
        datasets.mnist(tmp_path / "short.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds neither the four IDX files"):
        datasets.mnist(empty)
