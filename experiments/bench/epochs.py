"""Speed, measured side by side in one run (``xfw bench``).

Tables:

1. the course CNN on digits (batch 100, SGD): seconds per training epoch of each
   framework in float32 and float64, and the ratio to torch (same dtype);
2. the same on 28x28 synthetic data;
3. the scratch engine against a nested-loop convolution of the kind the course shows
   (loops over images, channels, filters and output pixels), the rest of the network
   unchanged;
4. with ``--grid``: the full default grid with the default executor against Keras run
   the course's way (``model.fit`` per cell, one process).

Each time is the median over ``--epochs`` epochs after one warm-up epoch (which pays
for tracing and first allocations). Training only: no per-epoch evaluation. Every
worker runs one thread per framework; this process sets that up before timing.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from scratch import architectures
from scratch.layers import Conv2DOp

from .. import datasets
from ..runtime import FRAMEWORKS, available, limit_threads, make_trainer


class LoopConv2DOp(Conv2DOp):
    """Conv2D with explicit nested loops, as the course writes it (its maths corrected:
    the sum runs over input channels, the kernel is not flipped). The reference for the
    speed-up of the vectorised engine; never used for training."""

    def forward(self, x, training):
        self._x = xp = self._pad(x)
        kernel, bias = self.params["kernel"], self.params["bias"]
        (kh, kw), (sh, sw), (ho, wo) = self.kernel_size, self.strides, self.out_hw
        n, c = x.shape[:2]
        out = np.zeros((n, kernel.shape[0], ho, wo), dtype=x.dtype)
        for img in range(n):
            for chin in range(c):
                for fmap in range(kernel.shape[0]):
                    for h in range(ho):
                        for w in range(wo):
                            out[img, fmap, h, w] += np.sum(
                                xp[img, chin, h * sh:h * sh + kh, w * sw:w * sw + kw] * kernel[fmap, chin])
        return out + bias[None, :, None, None]

    always_dx = True  # the course computes the input gradient even where nothing uses it

    def backward(self, dout, need_dx=True):
        need_dx = need_dx or self.always_dx
        xp, kernel = self._x, self.params["kernel"]
        (kh, kw), (sh, sw), (ho, wo) = self.kernel_size, self.strides, self.out_hw
        n, c = xp.shape[:2]
        dxp = np.zeros_like(xp)
        dk = np.zeros_like(kernel)
        for img in range(n):
            for chin in range(c):
                for fmap in range(kernel.shape[0]):
                    for h in range(ho):
                        for w in range(wo):
                            g = dout[img, fmap, h, w]
                            if need_dx:  # same work as the vectorised op: skipped for the first layer
                                dxp[img, chin, h * sh:h * sh + kh, w * sw:w * sw + kw] += g * kernel[fmap, chin]
                            dk[fmap, chin] += g * xp[img, chin, h * sh:h * sh + kh, w * sw:w * sw + kw]
        self.grads["kernel"][...] = dk
        self.grads["bias"][...] = dout.sum(axis=(0, 2, 3))
        hh, ww = self.input_shape[1:]
        return dxp[:, :, self.pad_h[0]:self.pad_h[0] + hh, self.pad_w[0]:self.pad_w[0] + ww]


def _epoch_seconds(trainer, data, batch_size: int, epochs: int) -> float:
    trainer.fit(data.x_train, data.y_train, epochs=1, batch_size=batch_size, seed=0, evaluate_train=False)
    times = []
    for e in range(epochs):
        start = time.perf_counter()
        trainer.fit(data.x_train, data.y_train, epochs=1, batch_size=batch_size, seed=e + 1, evaluate_train=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def framework_table(data, frameworks, *, arch="course_cnn", batch_size=100, epochs=3, dtypes=("float32", "float64")):
    """Rows (framework, dtype, seconds per epoch, ratio to torch of the same dtype)."""
    layers = architectures.get(arch)
    rows = []
    for dtype in dtypes:
        d = datasets.Dataset(data.name, data.x_train.astype(dtype), data.y_train, data.x_test.astype(dtype),
                             data.y_test, data.num_classes)
        for fw in frameworks:
            trainer = make_trainer(fw, layers, d.input_shape, loss="categorical_crossentropy", optimizer="sgd",
                                   learning_rate=0.01, l2=1e-4, dtype=dtype, seed=0)
            rows.append({"framework": fw, "dtype": dtype, "seconds": _epoch_seconds(trainer, d, batch_size, epochs)})
    for row in rows:
        ref = [r["seconds"] for r in rows if r["framework"] == "torch" and r["dtype"] == row["dtype"]]
        row["vs_torch"] = row["seconds"] / ref[0] if ref else float("nan")
    return rows


def loop_table(data, *, batch_size=100, epochs=3):
    """The vectorised scratch epoch against the same model with the nested-loop Conv2D.

    Two loop versions: as the course writes it (its backward always computes the input
    gradient, even of the first layer) and doing the same work as the vectorised op
    (which skips the input gradient of the first layer, since nothing uses it).
    """
    import scratch

    layers = architectures.get("course_cnn")
    fast = scratch.Trainer(layers, data.input_shape, learning_rate=0.01, l2=1e-4)
    fast_s = _epoch_seconds(fast, data, batch_size, epochs)
    result = {"vectorised": fast_s}
    for name, always_dx in (("loop_course", True), ("loop_same_work", False)):
        slow = scratch.Trainer(layers, data.input_shape, learning_rate=0.01, l2=1e-4)
        conv = slow.model.ops[0]
        loop = LoopConv2DOp(conv.index, conv.input_shape, slow.model.layers[0], slow.model.dtype)
        loop.params, loop.grads = conv.params, conv.grads  # the model's live arrays: the optimizer updates them
        loop.always_dx = always_dx
        slow.model.ops[0] = loop
        start = time.perf_counter()  # one epoch: the loop version is too slow to repeat
        slow.fit(data.x_train, data.y_train, epochs=1, batch_size=batch_size, seed=0, evaluate_train=False)
        result[name] = time.perf_counter() - start
    return result


def _print_table(title, rows):
    print(f"\n{title}")
    print(f"{'framework':<10} {'dtype':<8} {'s/epoch':>9} {'x torch':>8}")
    for r in rows:
        print(f"{r['framework']:<10} {r['dtype']:<8} {r['seconds']:9.4f} {r['vs_torch']:8.2f}")


def main(args) -> int:
    limit_threads()
    frameworks = available(args.frameworks or FRAMEWORKS)
    digits = datasets.digits()
    print(f"course_cnn, SGD, batch 100, training epoch only, median of {args.epochs} after a warm-up; "
          f"{digits.x_train.shape[0]} training samples")
    _print_table("digits 1x8x8", framework_table(digits, frameworks, epochs=args.epochs))
    if not args.no_28:
        synth = datasets.synthetic(n=2000, input_shape=(1, 28, 28), seed=0)
        _print_table("synthetic 1x28x28 (1600 training samples)",
                     framework_table(synth, frameworks, epochs=args.epochs))
    if not args.no_loop:
        r = loop_table(digits, epochs=args.epochs)
        print(f"\nscratch float64 epoch {r['vectorised']:.4f} s; nested-loop Conv2D epoch, as the course writes it "
              f"{r['loop_course']:.2f} s ({r['loop_course'] / r['vectorised']:.0f}x), doing the same work "
              f"{r['loop_same_work']:.2f} s ({r['loop_same_work'] / r['vectorised']:.0f}x)")
    if args.grid:
        from .grid import bench_grid

        bench_grid()
    if getattr(args, "lenet", False):
        from .grid import bench_lenet_grid

        bench_lenet_grid()
    return 0
