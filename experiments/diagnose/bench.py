"""Benchmark: seconds to diagnose one failing layer quantity (target: under 5 s on 2 cores).

``python -m experiments.diagnose.bench`` prints, for a few failing layers (a planted
breakage applied to the scratch engine, batch 8), the time of one ``diagnose_layer``
call, the id it names first, and the ratio to the time of the reference run alone;
the last row is the slowest path, where no hypothesis fits.
"""
from __future__ import annotations

import time

import numpy as np

from experiments.parity import breakages as B
from experiments.parity.tolerances import rtol_for
from scratch import spec as S

from . import diagnose_layer
from .engine import LayerRun

CASES = (
    ("convolution-not-correlation", S.Conv2D(8, 3, activation="relu"), (4, 28, 28), "output"),
    ("relu-derivative-missing", S.Conv2D(8, 5, strides=2, padding="same", activation="relu"), (4, 28, 28),
     "kernel gradient"),
    ("conv-backward-stride-off-by-one", S.Conv2D(8, 3, strides=2), (4, 28, 28), "input gradient"),
    ("maxpool-gradient-to-all-ties", S.MaxPool2D(2), (8, 28, 28), "input gradient"),
    ("sigmoid-derivative-twice", S.Dense(64, activation="sigmoid"), (256,), "kernel gradient"),
)


def _case(name, layer, shape, quantity, n=8):
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, size=(n,) + shape).astype(float) if "ties" in name else rng.normal(size=(n,) + shape)
    run = LayerRun(layer, shape, x, {})
    params = {k.split(".")[1]: rng.normal(size=v.shape) for k, v in run.model.parameters().items()}
    dy = rng.normal(size=run.output.shape)
    t0 = time.perf_counter()
    expected = LayerRun(layer, shape, x, params).backward(dy)[quantity]
    t_ref = time.perf_counter() - t0
    got = LayerRun(layer, shape, x, params, patch=B.get(name).patch).backward(dy)[quantity]
    return dict(input_shape=shape, x=x, dy=dy, params=params, quantity=quantity, got=got, expected=expected,
                rtol=rtol_for("float64")), t_ref


def main():
    print(f"{'planted mistake':34} {'quantity':16} {'seconds':>8} {'x reference':>12}  named first")
    for name, layer, shape, quantity in CASES:
        kw, t_ref = _case(name, layer, shape, quantity)
        t0 = time.perf_counter()
        found = diagnose_layer(layer, **kw)
        dt = time.perf_counter() - t0
        print(f"{name:34} {quantity:16} {dt:8.3f} {dt / t_ref:12.0f}  {found[0].id if found else '-'}")
    # The slowest path: nothing fits, so every hypothesis and every pair is tried.
    name, layer, shape, quantity = CASES[1]
    kw, t_ref = _case(name, layer, shape, "input gradient")
    kw["got"] = kw["expected"] + np.random.default_rng(1).normal(size=kw["expected"].shape)
    t0 = time.perf_counter()
    found = diagnose_layer(layer, **kw)
    dt = time.perf_counter() - t0
    print(f"{'(nothing fits: random error)':34} {'input gradient':16} {dt:8.3f} {dt / t_ref:12.0f}  "
          f"{found[0].id if found else '-'}")


if __name__ == "__main__":
    main()
