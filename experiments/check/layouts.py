"""einops-style layout strings: parse what the user declares, convert to and from canonical.

A layout names the axes of one array in the order they are stored, e.g. ``"n h w c"``
(a batch of channels-last images), ``"(kh kw) out"`` (a flattened kernel), ``"n (h w c)"``
(images flattened height first). Axis names by kind of array:

=================  ==============================  ========================
kind               allowed axes                    canonical (scratch)
=================  ==============================  ========================
``image``          ``n c h w``                     ``n c h w``
``flat``           ``n f`` (or ``n c h w`` grouped  ``n f`` = ``n (c h w)``
                   when the features are an image)
``conv-kernel``    ``out in kh kw``                ``out in kh kw``
``dense-kernel``   ``in out`` (``in`` may be        ``in out``
                   ``(h w c)`` after a Flatten)
``bias``           ``out``                         ``out``
=================  ==============================  ========================

Axes of size 1 may be left out; a layout without ``n`` means one sample at a time. The
rearranging itself is :func:`einops.rearrange`; the checks (and their one-line messages,
which name the string and the allowed axes) are ours, made before einops sees anything.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
from einops import rearrange

KINDS = {
    "image": ("n", "c", "h", "w"),
    "flat": ("n", "f"),
    "conv-kernel": ("out", "in", "kh", "kw"),
    "dense-kernel": ("in", "out"),
    "bias": ("out",),
}
#: The flattened features of an image may also be described by its axes: ``n (h w c)``.
FLAT_IMAGE_AXES = ("n", "c", "h", "w")
#: Names einops is given instead (it warns about axis names that are Python keywords).
_EINOPS = {"in": "cin"}
_TOKEN = re.compile(r"\(|\)|[A-Za-z_][A-Za-z_0-9]*|\S")


class LayoutError(ValueError):
    """A layout string that cannot describe the array (one line, names the string)."""


@dataclass(frozen=True)
class Layout:
    """A parsed layout: ``groups`` holds one tuple of axis names per stored axis."""

    text: str
    groups: Tuple[Tuple[str, ...], ...]

    @property
    def axes(self) -> Tuple[str, ...]:
        return tuple(a for g in self.groups for a in g)

    @property
    def per_sample(self) -> bool:
        return "n" not in self.axes


def parse(text, *, what: str, allowed) -> Layout:
    """Parse ``text`` (e.g. ``"n (h w c)"``) whose axes must come from ``allowed``.

    ``what`` names the array in messages (``"output_layout"``, ``"params['kernel']"``).
    Raises :class:`LayoutError` on a non-string, bad parentheses, an unknown or a repeated axis.
    """
    names = " ".join(allowed)
    if not isinstance(text, str) or not text.strip():
        raise LayoutError(f"{what}: layout {text!r} is not a layout string; write axis names from: {names}")
    groups, current = [], None
    for tok in _TOKEN.findall(text):
        if tok == "(":
            if current is not None:
                raise LayoutError(f"{what}: layout {text!r} nests parentheses; one level of groups is allowed")
            current = []
        elif tok == ")":
            if current is None:
                raise LayoutError(f"{what}: layout {text!r} closes a parenthesis it never opened")
            if not current:
                raise LayoutError(f"{what}: layout {text!r} has an empty group '()'; allowed axes: {names}")
            groups.append(tuple(current))
            current = None
        else:
            if tok not in allowed:
                raise LayoutError(f"{what}: layout {text!r} has unknown axis {tok!r}; allowed axes: {names}")
            if current is None:
                groups.append((tok,))
            else:
                current.append(tok)
    if current is not None:
        raise LayoutError(f"{what}: layout {text!r} leaves a parenthesis open")
    layout = Layout(text, tuple(groups))
    seen = set()
    for a in layout.axes:
        if a in seen:
            raise LayoutError(f"{what}: layout {text!r} names axis {a!r} twice; allowed axes: {names}")
        seen.add(a)
    return layout


def parse_axes(text) -> tuple:
    """The axis names a layout string writes (no checks: ``()`` for a non-string)."""
    return tuple(t for t in _TOKEN.findall(text) if t not in "()") if isinstance(text, str) else ()


class Converter:
    """Moves one kind of array between the user's layout and the canonical one.

    ``sizes`` gives every canonical axis its size except ``n``. ``kind`` is a key of
    :data:`KINDS`; for ``flat`` data that came from an image pass ``image_shape=(c, h, w)``
    so that ``(h w c)``-style groups are understood (canonical order C, H, W).
    """

    def __init__(self, text, *, kind: str, sizes: Dict[str, int], what: str,
                 image_shape: Optional[Tuple[int, int, int]] = None):
        self.what, self.kind = what, kind
        flat_axis = {"flat": "f", "dense-kernel": "in"}.get(kind) if image_shape is not None else None
        allowed = KINDS[kind] + (("c", "h", "w") if flat_axis else ())
        self.layout = parse(text, what=what, allowed=allowed)
        axes = set(self.layout.axes)
        self.sizes = dict(sizes)
        canonical = KINDS[kind]
        if flat_axis and axes & {"c", "h", "w"}:
            if flat_axis in axes:
                raise LayoutError(f"{what}: layout {text!r} mixes {flat_axis!r} with image axes; write either "
                                  f"{flat_axis!r} or the image axes grouped, such as '(h w c)'")
            self.sizes.update(zip("chw", image_shape))
            canonical = tuple(("c", "h", "w") if a == flat_axis else a for a in canonical)
        required = [a for item in canonical for a in (item if isinstance(item, tuple) else (item,)) if a != "n"]
        for axis in required:
            if axis not in axes and self.sizes[axis] != 1:
                raise LayoutError(
                    f"{what}: layout {text!r} leaves out axis {axis!r} of size {self.sizes[axis]}; only axes of "
                    f"size 1 may be left out (allowed axes: {' '.join(allowed)})")
        self.canonical = canonical

    @property
    def per_sample(self) -> bool:
        return self.layout.per_sample and "n" in KINDS[self.kind]

    def _pattern(self, batched: bool) -> Tuple[str, str]:
        axes = set(self.layout.axes)

        def name(a):
            return _EINOPS.get(a, a) if a in axes else "1"

        parts = []
        for item in self.canonical:
            if isinstance(item, tuple):
                parts.append("(" + " ".join(name(a) for a in item if a in axes) + ")")
            elif item == "n":
                if batched:
                    parts.append("n")
            else:
                parts.append(name(item))
        user = " ".join("(" + " ".join(map(name, g)) + ")" if len(g) > 1 else name(g[0]) for g in self.layout.groups)
        return user, " ".join(parts)

    def shape(self, n: Optional[int] = None) -> tuple:
        """The shape the user's array must have (``n``: batch size, when the layout has ``n``)."""
        sizes = dict(self.sizes, n=n)
        return tuple(math.prod(sizes[a] for a in g) for g in self.layout.groups)

    def fits(self, raw: np.ndarray, n: Optional[int] = None) -> bool:
        return tuple(raw.shape) == self.shape(n)

    def to_canonical(self, raw: np.ndarray) -> np.ndarray:
        """The canonical array (with ``n`` when the layout has it); call :meth:`fits` first."""
        user, canon = self._pattern(batched="n" in self.layout.axes)
        return np.ascontiguousarray(rearrange(raw, f"{user} -> {canon}", **self._lengths()))

    def from_canonical(self, a: np.ndarray) -> np.ndarray:
        """The user's layout of canonical ``a`` (one sample, without ``n``, for per-sample layouts)."""
        user, canon = self._pattern(batched="n" in self.layout.axes)
        return np.ascontiguousarray(rearrange(a, f"{canon} -> {user}", **self._lengths()))

    def _lengths(self) -> dict:
        # einops needs every axis length it cannot infer; giving all but 'n' is always enough.
        return {_EINOPS.get(a, a): self.sizes[a] for a in self.layout.axes if a != "n"}

    def describe(self, n: Optional[int] = None) -> str:
        """``"'n h w c' = (3, 6, 6, 1)"``: the layout and the shape it implies."""
        return f"{self.layout.text!r} = {self.shape(n)}"
