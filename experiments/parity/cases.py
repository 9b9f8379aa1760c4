"""The parity matrix: every case the suite compares, with a readable id.

A *layer case* is a one-entry network (one spec layer, possibly with its fused
activation), an input shape, a batch size and a dtype. The matrix covers
(docs/DESIGN.md, "Tolerances"):

* every layer kind: ``conv`` (Conv2D), ``maxpool``, ``avgpool``, ``dense``, ``flatten``,
  ``activation`` (standalone) and ``dropout`` (inference mode: masks cannot be shared);
* every activation, standalone on an image and fused into a Conv2D and a Dense;
* stride 1 and 2; ``valid`` and ``same`` (symmetric and TensorFlow's asymmetric
  padding, which odd and even input sizes give); square and non-square kernels and pools;
  1 and 3 input channels; batch 1 and batch 7; odd spatial sizes;
* float64 and float32.

Ids read like ``conv-k2x3-s2-same-c3-b7-9x7-float64``:
kind, kernel (``k``) or pool (``p``) size, stride, padding, channels, batch, input
height x width, [fused activation,] dtype. Batch 1 and 7 alternate over the product of
the other factors (their parity), so every level of every factor meets both batches.

A *loss case* is a small Conv2D -> Flatten -> Dense network ending in the loss's
activation (softmax for categorical cross-entropy, sigmoid for binary cross-entropy,
none for MSE), with or without L2. *Model cases* are the registered architectures at
:data:`ARCH_INPUT_SHAPES`.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Tuple

from scratch import architectures
from scratch.checks import DTYPE_NAMES
from scratch import spec as S

DTYPES = tuple(reversed(DTYPE_NAMES))  # float64 first: the strict check runs first
#: Layer kinds of the matrix, as ``--layers`` takes them.
LAYER_KINDS = ("conv", "maxpool", "avgpool", "dense", "flatten", "activation", "dropout")
#: Activations with the parameters the matrix uses (leaky_relu with a slope that is
#: neither Keras's nor torch's default, so a forgotten slope shows).
ACTIVATIONS = {
    "identity": S.Activation("identity"),
    "relu": S.Activation("relu"),
    "leaky_relu": S.Activation("leaky_relu", 0.1),
    "sigmoid": S.Activation("sigmoid"),
    "tanh": S.Activation("tanh"),
    "softmax": S.Activation("softmax"),
}
#: Canonical input shapes of the registered architectures (28x28 for LeNet, the 8x8
#: digits for the course networks).
ARCH_INPUT_SHAPES = {"lenet": (1, 28, 28)}
DEFAULT_ARCH_INPUT = (1, 8, 8)
MODEL_BATCH = 7
#: The loss parity's L2 factor: a power of two, so that the stock
#: ``keras.regularizers.L2`` (which rounds lambda through float32) applies it exactly too.
L2 = 2.0 ** -7


def arch_input_shape(name: str) -> tuple:
    architectures.get(name)  # unknown names list the registered ones
    return ARCH_INPUT_SHAPES.get(name, DEFAULT_ARCH_INPUT)


@dataclass(frozen=True)
class LayerCase:
    """One network of the layer matrix. ``integer_inputs``: inputs drawn from {-2..2} so
    that max pooling sees ties (the gradient must go to the first maximum only)."""

    id: str
    kind: str
    layers: Tuple
    input_shape: Tuple[int, ...]
    batch: int
    dtype: str
    integer_inputs: bool = False


@dataclass(frozen=True)
class LossCase:
    id: str
    loss: str
    layers: Tuple
    input_shape: Tuple[int, ...]
    batch: int
    dtype: str
    l2: float


@dataclass(frozen=True)
class ModelCase:
    id: str
    arch: str
    layers: Tuple
    input_shape: Tuple[int, ...]
    batch: int
    dtype: str
    l2: float = L2


def _hw(shape) -> str:
    return f"{shape[1]}x{shape[2]}"


def _layer_cases(dtype: str) -> list:
    out = []
    # Conv2D: kernel x stride x padding x channels, batch alternating by parity.
    for (ki, k), (si, s), (pi, p), (ci, c) in itertools.product(
            enumerate(((3, 3), (2, 3))), enumerate((1, 2)), enumerate(("valid", "same")), enumerate((1, 3))):
        b = 7 if (ki + si + pi + ci) % 2 else 1
        shape = (c, 9, 7) if c == 3 else (c, 7, 8)
        layer = S.Conv2D(4, k, strides=(s, s), padding=p)
        out.append(LayerCase(f"conv-k{k[0]}x{k[1]}-s{s}-{p}-c{c}-b{b}-{_hw(shape)}-{dtype}", "conv",
                             (layer,), shape, b, dtype))
    # Every activation fused into a Conv2D ("same", stride 2, non-square kernel).
    for i, (name, act) in enumerate(ACTIVATIONS.items()):
        b = 7 if i % 2 else 1
        shape = (3, 7, 8)
        layer = S.Conv2D(3, (3, 2), strides=(2, 2), padding="same", activation=act)
        out.append(LayerCase(f"conv-k3x2-s2-same-c3-b{b}-{_hw(shape)}-{name}-{dtype}", "conv",
                             (layer,), shape, b, dtype))
    # Pools: kind x pool size x stride x padding; channels and batch alternate.
    for (ki, kind), (zi, z), (si, s), (pi, p) in itertools.product(
            enumerate(("maxpool", "avgpool")), enumerate(((2, 2), (3, 2))), enumerate((1, 2)),
            enumerate(("valid", "same"))):
        c = 3 if (zi + pi) % 2 else 1
        b = 7 if (ki + zi + si + pi) % 2 else 1
        shape = (c, 7, 8) if s == 2 else (c, 9, 7)
        cls = S.MaxPool2D if kind == "maxpool" else S.AvgPool2D
        layer = cls(z, strides=(s, s), padding=p)
        out.append(LayerCase(f"{kind}-p{z[0]}x{z[1]}-s{s}-{p}-c{c}-b{b}-{_hw(shape)}-{dtype}", kind,
                             (layer,), shape, b, dtype))
    # Max pooling over integer inputs: ties, overlapping windows and -inf padding.
    for p, s in (("valid", 2), ("same", 1)):
        shape = (2, 7, 8)
        layer = S.MaxPool2D((3, 3) if s == 1 else (2, 2), strides=(s, s), padding=p)
        z = layer.pool_size
        out.append(LayerCase(f"maxpool-ties-p{z[0]}x{z[1]}-s{s}-{p}-c2-b7-{_hw(shape)}-{dtype}", "maxpool",
                             (layer,), shape, 7, dtype, integer_inputs=True))
    # Dense: plain, then every activation fused.
    for f, b in ((13, 1), (6, 7)):
        out.append(LayerCase(f"dense-f{f}-u5-b{b}-{dtype}", "dense", (S.Dense(5),), (f,), b, dtype))
    for i, (name, act) in enumerate(ACTIVATIONS.items()):
        b = 1 if i % 2 else 7
        out.append(LayerCase(f"dense-f9-u4-b{b}-{name}-{dtype}", "dense", (S.Dense(4, activation=act),),
                             (9,), b, dtype))
    # Flatten: the one layer whose output order differs between Keras (H, W, C) and scratch.
    for shape, b in (((3, 5, 7), 7), ((1, 4, 5), 1)):
        out.append(LayerCase(f"flatten-c{shape[0]}-b{b}-{_hw(shape)}-{dtype}", "flatten", (S.Flatten(),),
                             shape, b, dtype))
    # Every activation standalone, on an image (softmax over the channels).
    for i, (name, act) in enumerate(ACTIVATIONS.items()):
        b = 7 if i % 2 else 1
        shape = (3, 5, 7)
        out.append(LayerCase(f"activation-{name}-c3-b{b}-{_hw(shape)}-{dtype}", "activation", (act,),
                             shape, b, dtype))
    out.append(LayerCase(f"dropout-0.5-c3-b7-5x7-{dtype}", "dropout", (S.Dropout(0.5),), (3, 5, 7), 7, dtype))
    return out


#: Final activation and number of outputs of each loss's network.
_LOSS_HEADS = {"categorical_crossentropy": ("softmax", 4), "binary_crossentropy": ("sigmoid", 3), "mse": (None, 3)}
_LOSS_SHORT = {"categorical_crossentropy": "cce", "binary_crossentropy": "bce", "mse": "mse"}


def _loss_cases(dtype: str) -> list:
    out = []
    for loss, (act, k) in _LOSS_HEADS.items():
        layers = (S.Conv2D(3, (2, 2), activation="tanh"), S.Flatten(), S.Dense(k, activation=act))
        for l2 in (0.0, L2):
            tag = "-l2" if l2 else ""
            out.append(LossCase(f"{_LOSS_SHORT[loss]}{tag}-{dtype}", loss, layers, (2, 4, 5), 7, dtype, l2))
    return out


def layer_cases(kinds=None, dtypes=DTYPES) -> list:
    """The layer cases of ``kinds`` (default all) and ``dtypes``, float64 first."""
    kinds = LAYER_KINDS if kinds is None else tuple(kinds)
    return [c for d in dtypes for c in _layer_cases(d) if c.kind in kinds]


def loss_cases(dtypes=DTYPES) -> list:
    return [c for d in dtypes for c in _loss_cases(d)]


def model_cases(archs=None, dtypes=DTYPES) -> list:
    archs = architectures.names() if archs is None else tuple(archs)
    return [ModelCase(f"{a}-{d}", a, architectures.get(a), arch_input_shape(a), MODEL_BATCH, d)
            for d in dtypes for a in archs]


def find(case_id: str):
    """The layer, loss or model case with id ``case_id``."""
    for c in itertools.chain(layer_cases(), loss_cases(), model_cases()):
        if c.id == case_id:
            return c
    raise KeyError(f"unknown parity case {case_id!r}")


def layer_case(case_id: str) -> LayerCase:
    for c in layer_cases():
        if c.id == case_id:
            return c
    raise KeyError(f"unknown layer case {case_id!r}")


def label(layers, index: int) -> str:
    """``"layer 3 (Dense)"``: how results name spec entry ``index``."""
    return f"layer {index} ({type(layers[index]).__name__})"

