"""Convolutions the way course code writes them."""
import numpy as np
from scipy.signal import correlate2d, convolve2d


def relu(x):
    return np.where(x > 0, x, 0.0)


def relu_derivative(x):
    return np.where(x > 0, 1.0, 0.0)


class LoopConv:
    """One single-channel image (H, W) at a time, kernel K[(kh kw), filters], no bias,
    ReLU inside the layer, output (H', W', filters). ``bug``: None, "flipped" (a true
    convolution), "no-relu-derivative", "relu-derivative-at-zero" (x >= 0)."""

    def __init__(self, filters=2, k=3, seed=0, bug=None):
        self.k, self.bug = k, bug
        self.K = np.random.default_rng(seed).normal(0, 0.5, (k * k, filters))
        self.dK = np.zeros_like(self.K)

    def forward(self, image):
        self.x = image
        k, f = self.k, self.K.shape[1]
        h, w = image.shape[0] - k + 1, image.shape[1] - k + 1
        z = np.zeros((h, w, f))
        for j in range(f):
            kern = self.K[:, j].reshape(k, k)
            if self.bug == "flipped":
                kern = kern[::-1, ::-1]
            for r in range(h):
                for c in range(w):
                    z[r, c, j] = np.sum(image[r:r + k, c:c + k] * kern)
        self.z = z
        return relu(z)

    def backward(self, grad):
        k, f = self.k, self.K.shape[1]
        if self.bug == "no-relu-derivative":
            dz = grad
        elif self.bug == "relu-derivative-at-zero":
            dz = grad * np.where(self.z >= 0, 1.0, 0.0)
        else:
            dz = grad * relu_derivative(self.z)
        dx = np.zeros_like(self.x)
        self.dK = np.zeros_like(self.K)
        h, w = dz.shape[:2]
        for j in range(f):
            kern = self.K[:, j].reshape(k, k)
            dk = np.zeros((k, k))
            for r in range(h):
                for c in range(w):
                    dk += self.x[r:r + k, c:c + k] * dz[r, c, j]
                    dx[r:r + k, c:c + k] += kern * dz[r, c, j]
            self.dK[:, j] = dk.reshape(-1)
        return dx


class ScipyConv:
    """A batch of channels-last images (N, H, W, C), kernel W[kh, kw, C, F], bias b[F],
    scipy's correlate2d per image and channel; ``backward(grad, learning_rate)`` updates
    W and b in place and returns nothing. ``bug="bias-mean"``: the bias step is averaged
    over the batch, the kernel step is not."""

    def __init__(self, channels=2, filters=3, k=2, seed=0, bug=None):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0, 0.5, (k, k, channels, filters))
        self.b = rng.normal(0, 0.5, filters)
        self.bug = bug

    def forward(self, x):
        self.x = x
        n, h, w, c = x.shape
        k, f = self.W.shape[0], self.W.shape[3]
        y = np.zeros((n, h - k + 1, w - k + 1, f))
        for i in range(n):
            for j in range(f):
                for ch in range(c):
                    y[i, :, :, j] += correlate2d(x[i, :, :, ch], self.W[:, :, ch, j], mode="valid")
                y[i, :, :, j] += self.b[j]
        return y

    def backward(self, grad, learning_rate):
        n, h, w, c = self.x.shape
        f = self.W.shape[3]
        dW = np.zeros_like(self.W)
        for i in range(n):
            for j in range(f):
                for ch in range(c):
                    dW[:, :, ch, j] += correlate2d(self.x[i, :, :, ch], grad[i, :, :, j], mode="valid")
        db = grad.sum(axis=(0, 1, 2))
        if self.bug == "bias-mean":
            db = db / n
        self.W -= learning_rate * dW
        self.b -= learning_rate * db


def full_convolution_input_grad(grad, W):
    """dx of a valid cross-correlation: a full convolution of the upstream gradient."""
    n, h, w, f = grad.shape
    k, _, c, _ = W.shape
    dx = np.zeros((n, h + k - 1, w + k - 1, c))
    for i in range(n):
        for ch in range(c):
            for j in range(f):
                dx[i, :, :, ch] += convolve2d(grad[i, :, :, j], W[:, :, ch, j], mode="full")
    return dx
