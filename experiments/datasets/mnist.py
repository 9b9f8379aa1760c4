"""MNIST from local files, never downloaded: a Keras-layout ``mnist.npz``, the four IDX
files (a folder, or a torchvision ``MNIST`` root), two IDX files, or CSV exports."""
from __future__ import annotations

import gzip
import math
import os
import warnings
import zlib

import numpy as np

from scratch.checks import check_dtype, check_seed

from .base import Dataset, check_limit, finish

#: Keys a Keras-layout ``mnist.npz`` must hold.
MNIST_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
#: The four IDX files of a MNIST folder (each may also be gzipped, ``name + ".gz"``,
#: or spelled with a ``'.'`` before ``idx``, ``train-images.idx3-ubyte`` as some mirrors ship
#: them, or before ``ubyte``, ``train-images-idx3.ubyte``).
MNIST_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_MNIST_SIDE = 28
_MNIST_CLASSES = 10




#: CSV exports in a folder: one row per image, the label then 784 pixel values 0..255.
MNIST_CSV_FILES = ("mnist_train.csv", "mnist_test.csv")
_TEST_SIZE = 0.2  # the split of a source that has no test set of its own (digits' ratio)


def expected_layout() -> str:
    return (
        "expected one of: a Keras-layout mnist.npz with the keys " + ", ".join(MNIST_NPZ_KEYS)
        + "; a folder holding the four IDX files " + ", ".join(MNIST_IDX_FILES)
        + " (each plain or gzipped as name + '.gz'; the spellings 'train-images.idx3-ubyte' and "
        "'train-images-idx3.ubyte' are also accepted), or a torchvision MNIST root holding them in raw/; "
        "two IDX files, images and labels, as IMAGES,LABELS; a CSV file (label, then 784 pixels 0..255, "
        "header optional), two as TRAIN.csv,TEST.csv, or a folder holding " + " and ".join(MNIST_CSV_FILES)
    )


def _head(path: str) -> bytes:
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as fh:
            return fh.read(4)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"mnist: cannot read {path}: {exc}") from None


def _kind(path: str) -> str:
    """"npz", "idx-images", "idx-labels", "csv" or "unknown", from the file's first bytes."""
    head = _head(path)
    magic = int.from_bytes(head, "big") if len(head) == 4 else None
    if head.startswith(b"PK"):
        return "npz"
    if magic == _IDX_IMAGES_MAGIC:
        return "idx-images"
    if magic == _IDX_LABELS_MAGIC:
        return "idx-labels"
    if head and all(chr(b).isalnum() or chr(b) in ",_ \"'" for b in head):
        return "csv"
    return "unknown"


def _parse_csv(path: str):
    """(images (N, 28, 28) uint8, labels (N,)) of a CSV export; a first line that is not
    numbers is a header."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"mnist: cannot read {path} as CSV text ({exc}); " + expected_layout()) from None
    skip = 0 if first.replace(",", "").replace(".", "").strip().isdigit() else 1
    try:
        with warnings.catch_warnings():  # an empty file is reported below, not warned about
            warnings.simplefilter("ignore", UserWarning)
            table = np.loadtxt(path, delimiter=",", skiprows=skip, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"mnist: {path} is not a CSV of numbers ({' '.join(str(exc).split())}); "
                         "expected a label then 784 pixel values per line") from None
    pixels = _MNIST_SIDE * _MNIST_SIDE
    if table.shape[0] == 0:
        raise ValueError(f"mnist: {path} holds no rows; expected a label then {pixels} pixel values per line")
    if table.shape[1] != pixels + 1:
        raise ValueError(f"mnist: {path} has {table.shape[1]} columns; expected 785 (the label, then {pixels} "
                         "pixel values)")
    if table.size and (table.min() < 0 or table[:, 1:].max() > 255 or np.any(table != np.round(table))):
        raise ValueError(f"mnist: {path}: labels and pixels must be integers, pixels in 0..255")
    return table[:, 1:].astype(np.uint8).reshape(-1, _MNIST_SIDE, _MNIST_SIDE), table[:, 0].astype(np.int64)


def _split(x, y, where, seed):
    from .base import stratified_split

    x_train, x_test, y_train, y_test = stratified_split(f"mnist ({where})", x, y, _TEST_SIZE, seed)
    return (x_train, y_train, where, where), (x_test, y_test, where, where)


def _load_paths(paths, seed):
    """Train and test (x, y, x_path, y_path) of the files ``paths`` name (see expected_layout)."""
    kinds = [_kind(p) for p in paths]
    if len(paths) == 1:
        kind, path = kinds[0], paths[0]
        if kind == "npz":
            return _load_npz(path)
        if kind == "csv":
            x, y = _parse_csv(path)
            return _split(x, y, path, seed)
        if kind.startswith("idx"):
            raise ValueError(f"mnist: {path} is a single IDX {kind[4:]} file; give its images and labels files "
                             "together as IMAGES,LABELS, or the folder of the four IDX files")
        raise ValueError(f"mnist: {path} is in no known format; " + expected_layout())
    if len(paths) == 2 and sorted(kinds) == ["idx-images", "idx-labels"]:
        images, labels = (paths if kinds[0] == "idx-images" else paths[::-1])
        x, y = _parse_idx(images, _IDX_IMAGES_MAGIC), _parse_idx(labels, _IDX_LABELS_MAGIC)
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"mnist: {images} and {labels}: {x.shape[0]} images but {y.shape[0]} labels")
        return _split(x, y, f"{images} and {labels}", seed)
    if len(paths) == 2 and kinds == ["csv", "csv"]:
        (xtr, ytr), (xte, yte) = _parse_csv(paths[0]), _parse_csv(paths[1])
        return (xtr, ytr, paths[0], paths[0]), (xte, yte, paths[1], paths[1])
    raise ValueError(f"mnist: {','.join(paths)} ({', '.join(kinds)}) is no known pair; " + expected_layout())


def _load_folder(folder: str, seed):
    first = None
    for candidate in (folder, os.path.join(folder, "raw"), os.path.join(folder, "MNIST", "raw")):
        try:
            return _load_idx_folder(candidate)
        except FileNotFoundError as e:
            has_idx = os.path.isdir(candidate) and any("idx" in n for n in os.listdir(candidate))
            first = first or (e if has_idx else None)  # some IDX files there: name the one missing
    csvs = [os.path.join(folder, name) for name in MNIST_CSV_FILES]
    if all(os.path.isfile(p) for p in csvs):
        return _load_paths(csvs, seed)
    if first is not None:
        raise first
    raise FileNotFoundError(f"mnist: {folder} holds neither the four IDX files (nor raw/ or MNIST/raw/ with "
                            f"them) nor {' and '.join(MNIST_CSV_FILES)}; " + expected_layout())


def _read_bytes(path: str) -> bytes:
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                return fh.read()
        with open(path, "rb") as fh:
            return fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"mnist: cannot read {path}: {exc}") from None


def _parse_idx(path: str, magic: int) -> np.ndarray:
    """The array of one IDX file of unsigned bytes, checked against its header."""
    kind = "images" if magic == _IDX_IMAGES_MAGIC else "labels"
    ndim = magic & 0xFF
    data = _read_bytes(path)
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise ValueError(f"mnist: {path} is truncated: {len(data)} bytes, shorter than an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(
            f"mnist: {path} has a bad magic number 0x{found:08X}; an IDX {kind} file starts with "
            f"0x{magic:08X}. " + expected_layout()
        )
    if len(data) < header:
        raise ValueError(f"mnist: {path} is truncated: {len(data)} bytes, the IDX header alone is {header}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(dims)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(
            f"mnist: {path} is {what}: the header gives dims {dims}, i.e. {expected} bytes, "
            f"but the file has {len(data)}"
        )
    if kind == "images" and dims[1:] != (_MNIST_SIDE, _MNIST_SIDE):
        raise ValueError(
            f"mnist: {path} holds images of {dims[1]}x{dims[2]}; MNIST images are {_MNIST_SIDE}x{_MNIST_SIDE}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(folder: str, name: str) -> str:
    # "train-images.idx3-ubyte" (the mirrors' spelling) and "train-images-idx3.ubyte"
    stem, _, tail = name.rpartition("-")
    spellings = [name, name.replace("-idx", ".idx"), f"{stem}.{tail}"]
    candidates = [c for s in spellings for c in (s, s + ".gz")]
    for candidate in candidates:
        full = os.path.join(folder, candidate)
        if os.path.isfile(full):
            return full
    raise FileNotFoundError(
        f"mnist: {os.path.join(folder, name)} not found (also tried "
        + ", ".join(candidates[1:]) + f" in {folder}); " + expected_layout()
    )


def _load_npz(path: str):
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # not a zip, a pickle, unreadable...
        raise ValueError(f"mnist: cannot read {path} as an .npz archive ({exc}); " + expected_layout()) from None
    if not hasattr(archive, "files"):
        raise ValueError(f"mnist: {path} is a single .npy array, not an .npz archive; " + expected_layout())
    with archive:
        missing = [k for k in MNIST_NPZ_KEYS if k not in archive.files]
        if missing:
            raise ValueError(
                f"mnist: {path} lacks the key(s) {', '.join(missing)} (it has: {', '.join(archive.files) or 'none'}); "
                + expected_layout()
            )
        try:
            arrays = {k: archive[k] for k in MNIST_NPZ_KEYS}
        except Exception as exc:
            raise ValueError(f"mnist: cannot read the arrays of {path} ({exc})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or x.shape[1:] != (_MNIST_SIDE, _MNIST_SIDE):
            raise ValueError(
                f"mnist: {path}: x_{split} must be (N, {_MNIST_SIDE}, {_MNIST_SIDE}) images, got shape {x.shape}"
            )
        if not np.issubdtype(x.dtype, np.integer) or (x.size and (x.min() < 0 or x.max() > 255)):
            raise ValueError(f"mnist: {path}: x_{split} must hold uint8 pixel values 0..255, got dtype {x.dtype}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                f"mnist: {path}: y_{split} must be (N,) integer labels, got shape {y.shape} dtype {y.dtype}"
            )
    return (arrays["x_train"], arrays["y_train"], path, path), (arrays["x_test"], arrays["y_test"], path, path)


def _load_idx_folder(folder: str):
    paths = [_find_idx(folder, name) for name in MNIST_IDX_FILES]
    xtr = _parse_idx(paths[0], _IDX_IMAGES_MAGIC)
    ytr = _parse_idx(paths[1], _IDX_LABELS_MAGIC)
    xte = _parse_idx(paths[2], _IDX_IMAGES_MAGIC)
    yte = _parse_idx(paths[3], _IDX_LABELS_MAGIC)
    return (xtr, ytr, paths[0], paths[1]), (xte, yte, paths[2], paths[3])


def mnist(path, *, dtype=np.float64, seed=0, limit=None) -> Dataset:
    """MNIST from local files; nothing is downloaded.

    ``path`` is a Keras-layout ``mnist.npz`` (keys ``x_train``, ``y_train``, ``x_test``,
    ``y_test``; uint8 images ``(N, 28, 28)``, labels ``(N,)``) or a folder holding the IDX
    files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each plain or gzipped
    (``name + ".gz"``), also spelled with a ``'.'`` before ``idx``
    (``train-images.idx3-ubyte``, as some mirrors ship them) or before ``ubyte``
    (``train-images-idx3.ubyte``). IDX files are parsed by their header (magic
    ``0x00000803`` images / ``0x00000801`` labels, big-endian dims) and their size
    checked against it.

    Images ``(N, 1, 28, 28)`` with pixel values divided by 255, labels ``(N,)`` ``int64``
    in 0..9; the files' own train/test split (60000/10000) is kept, in file order.
    ``limit`` keeps the first ``limit`` training samples and the first
    ``max(1, limit // 5)`` test samples (the digits 80/20 ratio). A folder may also be a
    torchvision ``MNIST`` root (the IDX files in ``raw/``) or hold ``mnist_train.csv`` and
    ``mnist_test.csv``; ``path`` may also be one CSV file (label, then 784 pixels 0..255;
    a header line is skipped), two CSV files ``TRAIN.csv,TEST.csv``, or two IDX files
    ``IMAGES,LABELS``. A source without a test set of its own (one CSV file, two IDX
    files) is split 80/20, stratified with ``seed``; otherwise ``seed`` changes nothing.
    """
    dt = check_dtype(dtype)
    check_seed(seed)
    limit = check_limit(limit)
    if path is None:
        raise ValueError("mnist: pass path=, the path of mnist.npz or of the folder of IDX files; " + expected_layout())
    try:
        text = os.fspath(path)
    except TypeError:
        raise ValueError(f"mnist: path must be a str or os.PathLike, got {path!r}") from None
    parts = [os.path.abspath(os.path.expanduser(p.strip())) for p in str(text).split(",") if p.strip()]
    if len(parts) == 1 and os.path.isdir(parts[0]):
        train, test = _load_folder(parts[0], seed)
    else:
        for p in parts:
            if not os.path.isfile(p):
                raise FileNotFoundError(f"mnist: {p} does not exist; " + expected_layout())
        if not 1 <= len(parts) <= 2:
            raise ValueError(f"mnist: {text!r} names {len(parts)} files; " + expected_layout())
        train, test = _load_paths(parts, seed)

    out = []
    for split, (x, y, x_path, y_path), keep in (
        ("train", train, limit),
        ("test", test, None if limit is None else max(1, limit // 5)),
    ):
        where = x_path if x_path == y_path else f"{x_path} and {y_path}"
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"mnist: {where}: {x.shape[0]} {split} images but {y.shape[0]} {split} labels; the counts must match"
            )
        if y.size and (y.min() < 0 or y.max() >= _MNIST_CLASSES):
            raise ValueError(
                f"mnist: {y_path}: {split} labels must lie in 0..9, got range [{y.min()}, {y.max()}]"
            )
        if keep is not None:
            x, y = x[:keep], y[:keep]
        out += [x.astype(np.float64)[:, None, :, :] / 255.0, y.astype(np.int64)]
    x_train, y_train, x_test, y_test = out
    return finish("mnist", x_train, y_train, x_test, y_test, _MNIST_CLASSES, dt)
