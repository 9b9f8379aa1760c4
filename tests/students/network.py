"""A course-style fully connected network whose layers update themselves in backward."""
import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class SGDDense:
    """A batch (N, F) -> (N, U), W[in, out], sigmoid inside; backward(grad) computes the
    gradients, updates W and b in place with ``lr`` and returns the input gradient.
    ``bug``: None, "updated" (the input gradient through the updated W), "frozen" (this
    layer never updates: the loop stops before it), "batch" (divides by N once more)."""

    def __init__(self, fin, units, lr=0.1, seed=0, bug=None):
        rng = np.random.default_rng(seed)
        self.W, self.b = rng.normal(0, 0.5, (fin, units)), rng.normal(0, 0.5, units)
        self.lr, self.bug = lr, bug

    def forward(self, x):
        self.x = x
        self.a = sigmoid(x @ self.W + self.b)
        return self.a

    def backward(self, grad):
        dz = grad * self.a * (1 - self.a)
        if self.bug == "batch":
            dz = dz / len(self.x)
        if self.bug == "frozen":
            return dz @ self.W.T
        dx = dz @ self.W.T
        self.W -= self.lr * (self.x.T @ dz)
        self.b -= self.lr * dz.sum(axis=0)
        if self.bug == "updated":
            dx = dz @ self.W.T
        return dx
