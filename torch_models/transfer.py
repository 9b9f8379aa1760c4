"""Weights between torch and the scratch layout (see docs/DESIGN.md, 'Canonical layout').

Scratch keys are ``"<spec index>.kernel"`` and ``"<spec index>.bias"``; the spec index
of a torch child is given by :func:`torch_models.builder.entries` (for models from
``build`` and for hand-written ``nn.Sequential`` models it is the child's own number,
so ``"4.weight"`` <-> ``"4.kernel"``).

=================  ==============================  ===============================
torch              scratch                         mapping
=================  ==============================  ===============================
Conv2d.weight      Conv2D kernel W[out, in, kh, kw] the same layout, copied as is
Conv2d.bias        Conv2D bias b[out]              as is
Linear.weight      Dense kernel W[in, out]          **transposed** (torch is (out, in))
Linear.bias        Dense bias b[out]               as is
=================  ==============================  ===============================

No flatten permutation is needed: ``nn.Flatten`` and scratch both flatten C, H, W.

:func:`from_scratch` follows nanoGPT's ``from_pretrained``: an explicit list of the
module kinds whose weight is transposed (:data:`TRANSPOSED`), then every check (keys
missing or unexpected, shape, dtype of every array) before anything is copied, then
``copy_`` under ``torch.no_grad()``. A mismatch raises and leaves the model untouched.
Copies keep the dtype, so round trips are bit-exact in float32 and float64.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import List, NamedTuple

import numpy as np
import torch
from torch import nn

from scratch.model import Sequential as ScratchSequential

from .builder import Entry, entries, numpy_dtype

__all__ = ["TRANSPOSED", "PlannedWeight", "WeightPlan", "from_scratch", "to_scratch", "weight_plan"]

#: Module kinds whose ``weight`` is stored transposed relative to the scratch kernel.
TRANSPOSED = (nn.Linear,)
_PARAMETRIC = (nn.Conv2d, nn.Linear)
_SCRATCH_KIND = {nn.Conv2d: "Conv2D kernel W[out, in, kh, kw]", nn.Linear: "Dense kernel W[in, out]"}


class PlannedWeight(NamedTuple):
    """One torch parameter and its scratch counterpart."""

    key: str                #: scratch key, ``"<spec index>.kernel"`` or ``"<spec index>.bias"``
    param: torch.Tensor     #: the torch parameter itself (not a copy)
    transposed: bool        #: True for a Linear weight: scratch ``W[in, out]`` is ``param.T``
    entry: Entry            #: the spec entry holding the parameter (its ``where`` names it in errors)


class WeightPlan(NamedTuple):
    """:func:`weight_plan`'s result; unpacks as ``plan, all_entries = weight_plan(model)``."""

    weights: List[PlannedWeight]
    entries: List[Entry]


def weight_plan(model: nn.Sequential) -> WeightPlan:
    """Which torch parameter is which scratch weight, in scratch order.

    Returns ``(weights, entries)``: ``weights`` lists a :class:`PlannedWeight`
    ``(key, param, transposed, entry)`` for the kernel and then the bias of every Conv2d
    and Linear, in spec order (``key`` is the scratch key, ``param`` the live torch
    parameter, ``transposed`` True when the scratch kernel is ``param.T``, i.e. for
    Linear); ``entries`` is :func:`torch_models.builder.entries` of the model (every spec
    entry, parametric or not).

    Raises a ValueError for any other module that holds parameters or buffers
    (BatchNorm, ...), and for a Conv2d/Linear without bias (scratch layers always have
    one); the message names the layer.
    """
    weights = []
    all_entries = entries(model)
    for e in all_entries:
        for part in (e.pad, e.module, e.act):
            if part is None:
                continue
            own = list(part.parameters()) + list(part.buffers())
            if part is e.module and isinstance(part, _PARAMETRIC) and type(part) in _PARAMETRIC:
                if part.bias is None:
                    raise ValueError(f"{e.where}: has no bias; scratch's Conv2D and Dense always have one")
                continue
            if own:
                raise ValueError(f"{e.where}: {type(part).__name__} holds parameters or buffers and has no scratch "
                                 "counterpart; only Conv2d and Linear carry weights")
        if isinstance(e.module, _PARAMETRIC):
            t = isinstance(e.module, TRANSPOSED)
            weights.append(PlannedWeight(f"{e.index}.kernel", e.module.weight, t, e))
            weights.append(PlannedWeight(f"{e.index}.bias", e.module.bias, False, e))
    return WeightPlan(weights, all_entries)


def _scratch_shape(param: torch.Tensor, transposed: bool) -> tuple:
    shape = tuple(param.shape)
    return shape[::-1] if transposed else shape


def _layers_text(all_entries) -> str:
    return ", ".join(f"{e.index} ({type(e.module).__name__})" for e in all_entries)


def from_scratch(model: nn.Sequential, state) -> nn.Sequential:
    """Copy a scratch state dict (``{"0.kernel": array, ...}``) into ``model``.

    Parameters
    ----------
    model : torch.nn.Sequential
        From :func:`torch_models.build` or written by hand (see :func:`spec_of`).
    state : dict of NumPy arrays, or a ``scratch.Sequential`` (its ``state_dict()``)
        Canonical layout; dtypes must equal the model's (no silent casts).

    Returns
    -------
    The same ``model`` (for chaining).

    Raises
    ------
    KeyError
        Missing or unexpected keys (all of them are listed, with the model's layers).
    ValueError
        A shape mismatch: the message names the layer, the key, the scratch shape given
        and the one expected (and the torch parameter's own shape).
    TypeError
        A dtype mismatch or a value that is not an array.
    ValueError
        Also for a NaN or infinite weight, as scratch and Keras refuse them.
    Nothing is copied unless every check passes.
    """
    if isinstance(state, ScratchSequential):
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise TypeError(f"state: expected a dict of arrays (scratch layout), got {type(state).__name__}")
    plan, all_entries = weight_plan(model)
    expected = [key for key, *_ in plan]
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in set(expected)]
    if missing or extra:
        by_index = {str(e.index): e for e in all_entries}
        notes = []
        for k in extra:
            idx = str(k).split(".")[0]
            if idx in by_index:
                notes.append(f"{k!r}: layer {idx} is a {type(by_index[idx].module).__name__}, which has no such "
                             "parameter")
            else:
                notes.append(f"{k!r}: the model has no layer {idx}")
        raise KeyError(
            f"state dict does not match the model: missing keys {missing}, unexpected keys {extra}"
            + (f" ({'; '.join(notes)})" if notes else "")
            + f"; the model's layers are {_layers_text(all_entries)} and its scratch keys {expected}"
        )
    arrays = []
    for key, param, transposed, e in plan:
        value = state[key]
        if isinstance(value, torch.Tensor) or not hasattr(value, "shape") or not hasattr(value, "dtype"):
            raise TypeError(f"{e.where}: {key}: expected a NumPy array, got {type(value).__name__}")
        arr = np.asarray(value)
        want = _scratch_shape(param, transposed)
        if arr.shape != want:
            detail = ""
            if key.endswith(".kernel"):
                detail = f" for a {_SCRATCH_KIND[type(e.module)]}; the torch weight is {tuple(param.shape)}"
                detail += ", transposed" if transposed else ""
            raise ValueError(f"{e.where}: {key}: shape {arr.shape} given, the model expects {want}{detail}")
        mine = numpy_dtype(param.dtype)
        if arr.dtype != mine:
            raise TypeError(f"{e.where}: {key}: dtype {arr.dtype} does not match the model's {mine}; "
                            f"cast the state or build the model with dtype={mine.name}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{e.where}: {key}: contains NaN or inf; weights must be finite")
        arrays.append(arr)
    with torch.no_grad():
        for (key, param, transposed, e), arr in zip(plan, arrays):
            if not arr.flags.writeable:  # torch.from_numpy warns on read-only memory
                arr = arr.copy()
            src = torch.from_numpy(arr)
            param.copy_(src.T if transposed else src)
    return model


def to_scratch(model: nn.Sequential) -> dict:
    """The model's weights as a scratch state dict: ``{"0.kernel": array, "0.bias": array, ...}``.

    New C-contiguous NumPy arrays (copies) in the model's dtype; Linear weights are
    transposed to ``W[in, out]``.
    """
    plan, _ = weight_plan(model)
    out = {}
    for key, param, transposed, _ in plan:
        t = param.detach().cpu()
        out[key] = np.array((t.T if transposed else t).numpy(), order="C", copy=True)
    return out
