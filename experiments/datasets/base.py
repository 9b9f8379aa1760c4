"""The :class:`Dataset` record every loader returns, and the checks and split they share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from scratch.checks import FLOAT_DTYPES as DTYPES


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

    def fingerprint(self) -> str:
        """The SHA-256 of the four arrays as loaded (their dtypes, shapes and bytes, in the
        order x_train, y_train, x_test, y_test): the same data from any path or format
        gives the same fingerprint; another file at the same path another one."""
        import hashlib

        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(f"{a.dtype.str}{a.shape};".encode())
            h.update(memoryview(a).cast("B"))  # C-contiguous: no copy
        return h.hexdigest()

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


def check_limit(limit) -> Optional[int]:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit: expected None or a positive int, got limit={limit!r}")
    return int(limit)


def check_test_size(test_size) -> float:
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.floating, np.integer)) \
            or not 0 < float(test_size) < 1:
        raise ValueError(f"test_size: expected a fraction strictly between 0 and 1, got test_size={test_size!r}")
    return float(test_size)


def stratified_split(name: str, x: np.ndarray, y: np.ndarray, test_size: float, seed: int):
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


def finish(name: str, x_train, y_train, x_test, y_test, num_classes: int, dtype: np.dtype) -> Dataset:
    """Cast, make contiguous and check; the single exit of every loader."""
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train, dtype=dtype),
        y_train=np.ascontiguousarray(y_train, dtype=np.int64),
        x_test=np.ascontiguousarray(x_test, dtype=dtype),
        y_test=np.ascontiguousarray(y_test, dtype=np.int64),
        num_classes=num_classes,
    )
