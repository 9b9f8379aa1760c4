"""Pooling, dense, flatten and activation layers the way course code writes them."""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def sigmoid_derivative(x):
    s = sigmoid(x)
    return s * (1 - s)


class LoopMaxPool:
    """One channels-last image (H, W, C) at a time, 2x2 windows, stride 2. ``bug="ties"``
    sends the gradient to every cell equal to the maximum."""

    def __init__(self, bug=None):
        self.bug = bug

    def forward(self, image):
        self.x = image
        h, w, c = image.shape
        out = np.zeros((h // 2, w // 2, c))
        for r in range(h // 2):
            for s in range(w // 2):
                out[r, s] = image[2 * r:2 * r + 2, 2 * s:2 * s + 2].reshape(4, c).max(axis=0)
        return out

    def backward(self, grad):
        dx = np.zeros_like(self.x)
        c = self.x.shape[2]
        for r in range(grad.shape[0]):
            for s in range(grad.shape[1]):
                win = self.x[2 * r:2 * r + 2, 2 * s:2 * s + 2].reshape(4, c)
                if self.bug == "ties":
                    mask = (win == win.max(axis=0)).astype(float)
                else:
                    mask = np.zeros_like(win)
                    mask[win.argmax(axis=0), np.arange(c)] = 1.0
                dx[2 * r:2 * r + 2, 2 * s:2 * s + 2] += (mask * grad[r, s]).reshape(2, 2, c)
        return dx


class LoopAvgPool:
    """One (H, W, C) image at a time, 2x2 windows, stride 2."""

    def forward(self, image):
        self.shape = image.shape
        h, w, c = image.shape
        return image[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))

    def backward(self, grad):
        dx = np.zeros(self.shape)
        up = np.repeat(np.repeat(grad, 2, axis=0), 2, axis=1) / 4
        dx[: up.shape[0], : up.shape[1]] = up
        return dx


class Dense:
    """A batch (N, F) -> (N, U) with sigmoid inside; weights kept as W[out, in] (torch-like).
    ``bug``: None, "bias-mean" (bias gradient averaged over the batch), "float32" (returns
    float32), "nan" (returns NaN for the last sample)."""

    def __init__(self, fin, units, seed=0, bug=None):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0, 0.5, (units, fin))
        self.b = rng.normal(0, 0.5, units)
        self.bug = bug

    def forward(self, x):
        self.x = x
        self.z = x @ self.W.T + self.b
        y = sigmoid(self.z)
        if self.bug == "float32":
            return y.astype(np.float32)
        if self.bug == "nan":
            y = y.copy()
            y[-1, 0] = np.nan
        return y

    def backward(self, grad):
        dz = grad * sigmoid_derivative(self.z)
        self.dW = dz.T @ self.x
        self.db = dz.mean(axis=0) if self.bug == "bias-mean" else dz.sum(axis=0)
        return dz @ self.W


class DensePre:
    """Dense with ReLU whose backward takes dL/dz (the pre-activation), as course output layers do."""

    def __init__(self, fin, units, seed=0):
        self.W = np.random.default_rng(seed).normal(0, 0.5, (fin, units))

    def forward(self, x):
        self.x = x
        return np.maximum(x @ self.W, 0)

    def backward(self, delta):
        self.dW = self.x.T @ delta
        return delta @ self.W.T


class FlattenHWC:
    """Flattens one (H, W, C) image in H, W, C order."""

    def forward(self, image):
        self.shape = image.shape
        return image.reshape(-1)

    def backward(self, grad):
        return grad.reshape(self.shape)


def softmax_naive(x):
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_stable(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Softmax:
    """Softmax over the features of a batch (N, F); ``naive``: exp without the max shift."""

    def __init__(self, naive=False):
        self.fn = softmax_naive if naive else softmax_stable

    def forward(self, x):
        self.y = self.fn(x)
        return self.y

    def backward(self, grad):
        return self.y * (grad - (grad * self.y).sum(axis=-1, keepdims=True))
