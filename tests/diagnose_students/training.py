"""Course-style losses, update rules (``update_change(gradient) -> change``) and a two-layer
network whose ``backward(grad, lr)`` updates the weights in place, each with a ``bugs`` set."""
import numpy as np


def softmax(z, axis=1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def cross_entropy(z, y, bugs=()):
    """(mean loss, gradient with respect to the logits)."""
    n, k = z.shape
    p = softmax(z, axis=0 if "softmax-wrong-axis" in bugs else 1)
    div = n * k if "loss-divided-by-classes" in bugs else n
    if "loss-summed-not-averaged" in bugs:
        div = 1
    logp = np.log(p + 1e-9) if "epsilon" in bugs else np.log(p)
    grad = -y / p / div if "loss-gradient-of-outputs" in bugs else (p - y) / div
    return -np.sum(y * logp) / div, grad


def summed_cross_entropy(z, y, bugs=()):
    """A loss the student declares as a sum over the batch."""
    value, grad = cross_entropy(z, y)
    n = z.shape[0]
    return (value, grad) if "loss-averaged-not-summed" in bugs else (value * n, grad * n)


class Momentum:
    def __init__(self, eta, momentum, nesterov=False, bugs=()):
        self.eta, self.m, self.nesterov, self.bugs, self.v = eta, momentum, nesterov, set(bugs), 0.0

    def update_change(self, g):
        if "momentum-sign" in self.bugs:
            self.v = self.m * self.v + self.eta * g
            return -self.v  # w += change: climbs the loss
        if "dampening" in self.bugs:
            self.v = self.m * self.v + (1 - self.m) * g
            return self.eta * self.v
        self.v = self.m * self.v + self.eta * g
        if self.nesterov and "nesterov-as-classical" not in self.bugs:
            return self.m * self.v + self.eta * g
        return self.v


class RMSprop:
    def __init__(self, eta, rho, eps, bugs=()):
        self.eta, self.rho, self.eps, self.bugs, self.s = eta, rho, eps, set(bugs), 0.0

    def update_change(self, g):
        self.s = self.rho * self.s + (1 - self.rho) * g * g
        if "eps-inside-sqrt" in self.bugs:
            return self.eta * g / np.sqrt(self.s + self.eps)
        return self.eta * g / (np.sqrt(self.s) + self.eps)  # torch's rule


class Adagrad:
    def __init__(self, eta, eps, init=0.1, bugs=()):
        self.eta, self.eps, self.bugs = eta, eps, set(bugs)
        self.G = 0.0 if "adagrad-initial-accumulator" in self.bugs else init

    def update_change(self, g):
        if "accumulator-per-row" in self.bugs:
            self.G = self.G + np.sum(g * g, axis=tuple(range(1, g.ndim)) or None, keepdims=True)
        else:
            self.G = self.G + g * g
        return self.eta * g / np.sqrt(self.G + self.eps)  # Keras's rule


class Adam:
    def __init__(self, eta, b1=0.9, b2=0.999, eps=1e-8, l2=0.0, bugs=()):
        self.eta, self.b1, self.b2, self.eps, self.l2, self.bugs = eta, b1, b2, eps, l2, set(bugs)
        self.m = self.v = 0.0
        self.t = 0

    def update_change(self, g, w):
        if "l2-after-step" not in self.bugs:
            g = g + 2 * self.l2 * w
        if "step-counter-frozen" not in self.bugs:
            self.t += 1
        t = max(self.t, 1)
        self.m = self.b1 * self.m + (1 - self.b1) * g
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        if "bias-correction-missing" in self.bugs:
            mh, vh = self.m, self.v
        else:
            mh, vh = self.m / (1 - self.b1 ** t), self.v / (1 - self.b2 ** t)
        change = self.eta * mh / (np.sqrt(vh) + self.eps)
        if "l2-after-step" in self.bugs:
            change = change + self.eta * 2 * self.l2 * w
        return change


class TwoLayerNet:
    """relu Dense -> softmax Dense, cross-entropy; ``step`` = forward, backward with in-place SGD."""

    def __init__(self, params, lr, l2=0.0, bugs=()):
        self.p = {k: v.copy() for k, v in params.items()}
        self.lr, self.l2, self.bugs = lr, l2, set(bugs)

    def step(self, x, y):
        p, n = self.p, x.shape[0]
        z0 = x @ p["0.kernel"] + p["0.bias"]
        a0 = np.maximum(z0, 0)
        z1 = a0 @ p["1.kernel"] + p["1.bias"]
        g = (softmax(z1) - y) / n
        grads = {}
        for i, a in ((1, a0), (0, x)):
            if "batch-scaled-twice" in self.bugs and i == 1:
                g = g / n
            k2 = 1.0 if "l2-gradient-half" in self.bugs else 2.0
            grads[f"{i}.kernel"] = a.T @ g + k2 * self.l2 * p[f"{i}.kernel"]
            grads[f"{i}.bias"] = g.sum(axis=0) + (2 * self.l2 * p[f"{i}.bias"] if "l2-on-biases" in self.bugs else 0)
            if "first-layer-not-updated" in self.bugs and i == 0:
                grads["0.kernel"] = np.zeros_like(p["0.kernel"])
                grads["0.bias"] = np.zeros_like(p["0.bias"])
            if "backward-uses-updated-weights" in self.bugs:
                p[f"{i}.kernel"] = p[f"{i}.kernel"] - self.lr * grads[f"{i}.kernel"]
                p[f"{i}.bias"] = p[f"{i}.bias"] - self.lr * grads[f"{i}.bias"]
            dx = g @ p[f"{i}.kernel"].T
            if i == 1:
                g = dx * (z0 > 0)
            else:
                self.dx = dx
        if "backward-uses-updated-weights" not in self.bugs:
            for k in grads:
                p[k] = p[k] - self.lr * grads[k]
        return grads
