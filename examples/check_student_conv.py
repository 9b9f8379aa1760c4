"""A student's convolution, checked with ``xfw check examples/check_student_conv.py``.

One single-channel image at a time, the kernel flattened to (kh*kw, filters), ReLU inside
the layer, channels-last output. The bug: the ReLU derivative is taken as ``z >= 0``, so
the gradient leaks through where the pre-activation is exactly 0.
"""
import numpy as np

from experiments import check
from scratch import spec as S


class StudentConv:
    def __init__(self, filters=2, k=3, seed=0):
        self.k = k
        self.K = np.random.default_rng(seed).normal(0, 0.5, (k * k, filters))  # (kh*kw, filters)

    def forward(self, image):                      # image (H, W)
        k = self.k
        h, w = image.shape[0] - k + 1, image.shape[1] - k + 1
        patches = np.lib.stride_tricks.sliding_window_view(image, (k, k)).reshape(h, w, k * k)
        self.image, self.patches = image, patches
        self.z = patches @ self.K                   # (H', W', filters)
        return np.maximum(self.z, 0)

    def backward(self, grad):                       # grad (H', W', filters)
        dz = grad * (self.z >= 0)                   # BUG: relu'(0) is 0, not 1
        self.dK = self.patches.reshape(-1, self.k * self.k).T @ dz.reshape(-1, dz.shape[-1])
        dx = np.zeros_like(self.image)
        h, w = dz.shape[:2]
        dpatches = (dz @ self.K.T).reshape(h, w, self.k, self.k)
        for i in range(self.k):
            for j in range(self.k):
                dx[i:i + h, j:j + w] += dpatches[:, :, i, j]
        return dx


def check_student_conv():
    conv = StudentConv()
    return check.layer(S.Conv2D(2, 3, activation="relu"), input_shape=(1, 6, 6),
                       forward=conv.forward, backward=conv.backward,
                       input_layout="h w", output_layout="h w c",
                       params={"kernel": (lambda: conv.K, "(kh kw) out")},
                       grads={"kernel": lambda: conv.dK})
