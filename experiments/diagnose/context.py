"""What every layer hypothesis reads: the failing quantity, the inputs and the reference run."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

import numpy as np

from scratch import spec as S

from .engine import LayerRun


@dataclass
class LayerContext:
    """One failing quantity of one layer, canonical float64 (shapes as in :mod:`.engine`)."""

    layer: object
    input_shape: tuple
    x: np.ndarray
    dy: np.ndarray
    params: dict
    quantity: str
    pre_activation_grad: bool = False
    extra: dict = field(default_factory=dict)

    @cached_property
    def base(self) -> LayerRun:
        return self.run()

    @cached_property
    def reference(self) -> dict:
        return self.base.backward(self.dy, pre_activation_grad=self.pre_activation_grad)

    @cached_property
    def dz(self) -> np.ndarray:
        """Correct dL/d(pre-activation) (dL/d output for a layer without activation)."""
        return self.base.dz(self.dy, self.pre_activation_grad)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def kernel(self) -> Optional[np.ndarray]:
        k = (self.params or {}).get("kernel")
        return None if k is None else np.asarray(k, dtype=np.float64)

    @property
    def activation(self) -> Optional[S.Activation]:
        if isinstance(self.layer, S.Activation):
            return self.layer
        act = getattr(self.layer, "activation", None)
        return act if act is not None and act.name != "identity" else None

    def run(self, **kwargs) -> LayerRun:
        return LayerRun(self.layer, self.input_shape, self.x, self.params, **kwargs)

    def full(self, run: LayerRun, dy=None) -> dict:
        """All quantities of ``run`` after a backward pass from ``dy`` (default: the given dy)."""
        return run.backward(self.dy if dy is None else dy, pre_activation_grad=self.pre_activation_grad)

    def wants(self, *quantities) -> bool:
        return self.quantity in quantities
