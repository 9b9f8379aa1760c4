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

import math

import numpy as np

from scratch.checks import check_dtype, check_seed

from .base import DTYPES, Dataset, check_limit, check_test_size, finish, stratified_split
from .mnist import MNIST_IDX_FILES, MNIST_NPZ_KEYS, expected_layout, mnist

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

    dt = check_dtype(dtype)
    seed = check_seed(seed)
    test_size = check_test_size(test_size)
    limit = check_limit(limit)
    bunch = load_digits()
    x = np.asarray(bunch.images, dtype=np.float64)[:, None, :, :] / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x_train, x_test, y_train, y_test = stratified_split("digits", x, y, test_size, seed)
    return finish("digits", x_train, y_train, x_test, y_test, 10, dt)


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
    dt = check_dtype(dtype)
    seed = check_seed(seed)
    test_size = check_test_size(test_size)
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
    x_train, x_test, y_train, y_test = stratified_split("synthetic", x, y, test_size, seed)
    return finish("synthetic", x_train, y_train, x_test, y_test, num_classes, dt)


# --------------------------------------------------------------------------- dispatch


def load(name: str, *, path=None, dtype=np.float64, seed=0, test_size=0.2, limit=None, input_shape=None) -> Dataset:
    """The dataset ``name`` (one of :data:`DATASETS`); see the loaders for the details.

    * ``digits``: ``digits(dtype=, seed=, test_size=, limit=)``;
    * ``mnist``: ``mnist(path, dtype=, seed=, limit=)``; ``path`` is required, and
      ``test_size`` is not used (the files carry their own split);
    * ``synthetic``: ``synthetic(dtype=, seed=, test_size=)``, with ``n=limit`` when a
      ``limit`` is given (200 samples otherwise), and ``input_shape`` (C, H, W) when given
      ((1, 8, 8) otherwise).

    ``path`` is only for ``mnist``; passing it with another dataset is an error.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}")
    if name != "mnist" and path is not None:
        raise ValueError(f"path: only the mnist dataset reads files; {name!r} takes no path (got path={path!r})")
    if name != "synthetic" and input_shape is not None:
        raise ValueError(f"input_shape: only the synthetic dataset takes a sample shape; {name!r} has its own")
    if name == "digits":
        return digits(dtype=dtype, seed=seed, test_size=test_size, limit=limit)
    if name == "mnist":
        if path is None:
            raise ValueError(
                "mnist: pass path=, the path of mnist.npz or of the folder of IDX files "
                "(nothing is downloaded); " + expected_layout()
            )
        check_test_size(test_size)
        return mnist(path, dtype=dtype, seed=seed, limit=limit)
    limit = check_limit(limit)
    shape = {} if input_shape is None else {"input_shape": tuple(input_shape)}
    return synthetic(n=200 if limit is None else limit, dtype=dtype, seed=seed, test_size=test_size, **shape)
