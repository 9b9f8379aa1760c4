"""Image classification datasets shared by the scratch, Keras and PyTorch models.

Every loader returns a :class:`Dataset` with the same conventions, so that all three
frameworks see exactly the same arrays:

* images are ``(N, C, H, W)`` (NCHW, channels first), C-contiguous, in the requested
  floating dtype (``float32`` or ``float64``; nothing else), with values in ``[0, 1]``
  and no NaN or inf. Keras models that want NHWC transpose on their side;
* labels are ``(N,)`` ``int64`` class indices in ``[0, num_classes)``; one-hot targets
  come from :meth:`Dataset.onehot`;
* everything is deterministic: the same arguments (``seed`` included) give the same
  arrays, bit for bit.

Datasets (:data:`DATASETS`):

``digits``
    scikit-learn's 8x8 handwritten digits (1797 images, shipped inside scikit-learn,
    no download): ``(N, 1, 8, 8)``, pixel values 0..16 divided by 16, 10 classes, split
    by ``sklearn.model_selection.train_test_split(stratify=labels,
    random_state=seed, test_size=test_size)``.
``mnist``
    MNIST from local files (never downloaded): the Keras ``mnist.npz`` or a folder of
    the four IDX files, plain or gzipped. ``(N, 1, 28, 28)``, pixel values 0..255
    divided by 255, 10 classes, the files' own 60000/10000 train/test split.
``synthetic``
    a small, easily learnable set drawn from a seeded NumPy generator: one random
    prototype image per class plus small Gaussian noise, clipped to ``[0, 1]``;
    balanced classes, stratified split. Meant for tests.

Invalid arguments and malformed files raise ``ValueError`` (or ``FileNotFoundError``
for a missing file or folder) whose message names the option or the file (full
path) and says what was expected.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

__all__ = [
    "DATASETS",
    "DTYPES",
    "Dataset",
    "MNIST_IDX_FILES",
    "MNIST_NPZ_KEYS",
    "digits",
    "load",
    "mnist",
    "synthetic",
]

#: The names accepted by :func:`load`.
DATASETS = ("digits", "mnist", "synthetic")
#: The floating dtypes a dataset may be loaded in.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
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


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of an image classification dataset.

    ``x_train``/``x_test`` are ``(N, C, H, W)`` C-contiguous float32 or float64 arrays
    with values in ``[0, 1]`` (both in the same dtype and the same ``(C, H, W)``);
    ``y_train``/``y_test`` are ``(N,)`` ``int64`` labels in ``[0, num_classes)``.
    Construction checks all of this (integer labels of another integer dtype are
    converted to ``int64``; arrays are made C-contiguous). Equality is identity
    (``eq=False``): comparing datasets element-wise is the caller's business.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    def __post_init__(self):
        name = self.name
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, (int, np.integer)) \
                or self.num_classes < 1:
            raise ValueError(f"Dataset {name!r}: num_classes must be a positive int, got {self.num_classes!r}")
        object.__setattr__(self, "num_classes", int(self.num_classes))
        dtype = None
        for split in ("train", "test"):
            x = np.asarray(getattr(self, f"x_{split}"))
            y = np.asarray(getattr(self, f"y_{split}"))
            if x.ndim != 4:
                raise ValueError(f"Dataset {name!r}: x_{split} must be (N, C, H, W), got shape {x.shape}")
            if x.dtype not in DTYPES:
                raise ValueError(f"Dataset {name!r}: x_{split} must be float32 or float64, got dtype {x.dtype}")
            if dtype is None:
                dtype = x.dtype
            elif x.dtype != dtype:
                raise ValueError(f"Dataset {name!r}: x_train is {dtype} but x_test is {x.dtype}")
            if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(
                    f"Dataset {name!r}: y_{split} must be (N,) integer labels, got shape {y.shape} dtype {y.dtype}"
                )
            if y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"Dataset {name!r}: {x.shape[0]} images in x_{split} but {y.shape[0]} labels in y_{split}"
                )
            if x.size and not np.all(np.isfinite(x)):
                raise ValueError(f"Dataset {name!r}: x_{split} contains NaN or inf")
            if x.size and (x.min() < 0 or x.max() > 1):
                raise ValueError(
                    f"Dataset {name!r}: x_{split} values must lie in [0, 1], got [{x.min()}, {x.max()}]"
                )
            if y.size and (y.min() < 0 or y.max() >= self.num_classes):
                raise ValueError(
                    f"Dataset {name!r}: y_{split} labels must lie in [0, {self.num_classes - 1}], "
                    f"got [{y.min()}, {y.max()}]"
                )
            object.__setattr__(self, f"x_{split}", np.ascontiguousarray(x))
            object.__setattr__(self, f"y_{split}", np.ascontiguousarray(y, dtype=np.int64))
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"Dataset {name!r}: x_train images are {self.x_train.shape[1:]} but x_test images are "
                f"{self.x_test.shape[1:]}"
            )

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """``(C, H, W)`` of one image, as plain ints."""
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        """The floating dtype of the images."""
        return self.x_train.dtype

    def onehot(self, y) -> np.ndarray:
        """One-hot targets ``(N, num_classes)`` for labels ``y`` ``(N,)``, in the images' dtype."""
        y = np.asarray(y)
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
            raise ValueError(f"onehot: expected (N,) integer labels, got shape {y.shape} dtype {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= self.num_classes):
            raise ValueError(
                f"onehot: labels must lie in [0, {self.num_classes - 1}], got [{y.min()}, {y.max()}]"
            )
        out = np.zeros((y.shape[0], self.num_classes), dtype=self.dtype)
        out[np.arange(y.shape[0]), y.astype(np.intp)] = 1
        return out

    def describe(self) -> str:
        """One line: name, train/test shapes, number of classes and dtype."""
        return (
            f"{self.name}: train x{tuple(self.x_train.shape)} y{tuple(self.y_train.shape)}, "
            f"test x{tuple(self.x_test.shape)} y{tuple(self.y_test.shape)}, "
            f"{self.num_classes} classes, {self.dtype.name}"
        )

    def __repr__(self) -> str:
        return f"Dataset({self.describe()})"


# --------------------------------------------------------------------------- checks


def _check_dtype(dtype) -> np.dtype:
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except (TypeError, ValueError):
        dt = None
    if dt is None or not any(dt == ok for ok in DTYPES):
        raise ValueError(f"dtype: expected float32 or float64, got dtype={dtype!r}")
    return dt


def _check_limit(limit) -> Optional[int]:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit: expected None or a positive int, got limit={limit!r}")
    return int(limit)


def _check_test_size(test_size) -> float:
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.floating, np.integer)) \
            or not 0 < float(test_size) < 1:
        raise ValueError(f"test_size: expected a fraction strictly between 0 and 1, got test_size={test_size!r}")
    return float(test_size)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got seed={seed!r}")
    return int(seed)


def _stratified_split(name: str, x: np.ndarray, y: np.ndarray, test_size: float, seed: int):
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    except ValueError as exc:
        counts = np.bincount(y) if y.size else np.array([], dtype=int)
        raise ValueError(
            f"{name}: cannot make a stratified split of {y.shape[0]} samples with test_size={test_size} "
            f"(samples per class: {counts.tolist()}); every class needs at least 2 samples and the test "
            f"set at least one sample per class. Use a larger limit/n or another test_size. ({exc})"
        ) from None


def _finish(name: str, x_train, y_train, x_test, y_test, num_classes: int, dtype: np.dtype) -> Dataset:
    """Cast, make contiguous and check; the single exit of every loader."""
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train, dtype=dtype),
        y_train=np.ascontiguousarray(y_train, dtype=np.int64),
        x_test=np.ascontiguousarray(x_test, dtype=dtype),
        y_test=np.ascontiguousarray(y_test, dtype=np.int64),
        num_classes=num_classes,
    )


# --------------------------------------------------------------------------- digits


def digits(*, dtype=np.float64, seed=0, test_size=0.2, limit=None) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (shipped with scikit-learn; no download).

    Images ``(N, 1, 8, 8)`` with the pixel values 0..16 divided by 16 (so in
    ``[0, 1]``), labels ``(N,)`` ``int64`` in 0..9. ``limit`` keeps the first ``limit``
    of the 1797 samples (in scikit-learn's order) before splitting. The split is
    ``train_test_split(stratify=labels, random_state=seed, test_size=test_size)``:
    seeded and stratified, 1437/360 with the defaults.
    """
    from sklearn.datasets import load_digits

    dt = _check_dtype(dtype)
    seed = _check_seed(seed)
    test_size = _check_test_size(test_size)
    limit = _check_limit(limit)
    bunch = load_digits()
    x = np.asarray(bunch.images, dtype=np.float64)[:, None, :, :] / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x_train, x_test, y_train, y_test = _stratified_split("digits", x, y, test_size, seed)
    return _finish("digits", x_train, y_train, x_test, y_test, 10, dt)


# --------------------------------------------------------------------------- synthetic


def synthetic(*, n=200, input_shape=(1, 8, 8), num_classes=10, dtype=np.float64, seed=0, test_size=0.2,
              noise=0.1) -> Dataset:
    """A small learnable set for tests, deterministic for a given ``seed``.

    ``numpy.random.default_rng(seed)`` draws one prototype image per class, uniform in
    ``[0, 1]``; each of the ``n`` samples is its class's prototype plus Gaussian noise
    of standard deviation ``noise``, clipped to ``[0, 1]``. Classes are balanced
    (``n // num_classes`` or one more each) and in shuffled order; the split is
    stratified (``train_test_split(stratify=labels, random_state=seed)``). Images are
    ``(N, *input_shape)``; the values are drawn in float64 and then cast, so float32
    and float64 datasets of the same seed agree up to rounding.
    """
    dt = _check_dtype(dtype)
    seed = _check_seed(seed)
    test_size = _check_test_size(test_size)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"synthetic: n must be a positive int, got n={n!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"synthetic: num_classes must be an int >= 2, got num_classes={num_classes!r}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3 or any(
            isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
        raise ValueError(
            f"synthetic: input_shape must be (C, H, W), three positive ints, got input_shape={input_shape!r}"
        )
    shape = tuple(int(s) for s in shape)
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating, np.integer)) \
            or not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"synthetic: noise must be a finite number >= 0, got noise={noise!r}")
    n, num_classes = int(n), int(num_classes)

    rng = np.random.default_rng(seed)
    prototypes = rng.random((num_classes, *shape))
    y = rng.permutation(np.arange(n, dtype=np.int64) % num_classes)
    x = np.clip(prototypes[y] + float(noise) * rng.standard_normal((n, *shape)), 0.0, 1.0)
    x_train, x_test, y_train, y_test = _stratified_split("synthetic", x, y, test_size, seed)
    return _finish("synthetic", x_train, y_train, x_test, y_test, num_classes, dt)


# --------------------------------------------------------------------------- mnist


def _expected_layout() -> str:
    return (
        "expected either a Keras-layout mnist.npz with the keys " + ", ".join(MNIST_NPZ_KEYS)
        + " or a folder holding the four IDX files " + ", ".join(MNIST_IDX_FILES)
        + " (each plain or gzipped as name + '.gz'; the spellings 'train-images.idx3-ubyte' and 'train-images-idx3.ubyte' are also accepted)"
    )


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
            f"0x{magic:08X}. " + _expected_layout()
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
        + ", ".join(candidates[1:]) + f" in {folder}); " + _expected_layout()
    )


def _load_npz(path: str):
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # not a zip, a pickle, unreadable...
        raise ValueError(f"mnist: cannot read {path} as an .npz archive ({exc}); " + _expected_layout()) from None
    if not hasattr(archive, "files"):
        raise ValueError(f"mnist: {path} is a single .npy array, not an .npz archive; " + _expected_layout())
    with archive:
        missing = [k for k in MNIST_NPZ_KEYS if k not in archive.files]
        if missing:
            raise ValueError(
                f"mnist: {path} lacks the key(s) {', '.join(missing)} (it has: {', '.join(archive.files) or 'none'}); "
                + _expected_layout()
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
    ``max(1, limit // 5)`` test samples (the digits 80/20 ratio). ``seed`` is accepted
    for a uniform signature with the other loaders and does not change anything.
    """
    dt = _check_dtype(dtype)
    _check_seed(seed)
    limit = _check_limit(limit)
    if path is None:
        raise ValueError("mnist: pass path=, the path of mnist.npz or of the folder of IDX files; " + _expected_layout())
    try:
        full = os.path.abspath(os.path.expanduser(os.fspath(path)))
    except TypeError:
        raise ValueError(f"mnist: path must be a str or os.PathLike, got {path!r}") from None
    if os.path.isdir(full):
        train, test = _load_idx_folder(full)
    elif os.path.isfile(full):
        train, test = _load_npz(full)
    else:
        raise FileNotFoundError(f"mnist: {full} does not exist; " + _expected_layout())

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
    return _finish("mnist", x_train, y_train, x_test, y_test, _MNIST_CLASSES, dt)


# --------------------------------------------------------------------------- dispatch


def load(name: str, *, path=None, dtype=np.float64, seed=0, test_size=0.2, limit=None) -> Dataset:
    """The dataset ``name`` (one of :data:`DATASETS`); see the loaders for the details.

    * ``digits``: ``digits(dtype=, seed=, test_size=, limit=)``;
    * ``mnist``: ``mnist(path, dtype=, seed=, limit=)``; ``path`` is required, and
      ``test_size`` is not used (the files carry their own split);
    * ``synthetic``: ``synthetic(dtype=, seed=, test_size=)``, with ``n=limit`` when a
      ``limit`` is given (200 samples otherwise).

    ``path`` is only for ``mnist``; passing it with another dataset is an error.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}")
    if name != "mnist" and path is not None:
        raise ValueError(f"path: only the mnist dataset reads files; {name!r} takes no path (got path={path!r})")
    if name == "digits":
        return digits(dtype=dtype, seed=seed, test_size=test_size, limit=limit)
    if name == "mnist":
        if path is None:
            raise ValueError(
                "mnist: pass path=, the path of mnist.npz or of the folder of IDX files "
                "(nothing is downloaded); " + _expected_layout()
            )
        _check_test_size(test_size)
        return mnist(path, dtype=dtype, seed=seed, limit=limit)
    limit = _check_limit(limit)
    return synthetic(n=200 if limit is None else limit, dtype=dtype, seed=seed, test_size=test_size)
