"""Losses and optimizers the way course code writes them."""
import numpy as np


def cross_entropy_mean(z, y):
    """Mean over the batch of -sum y log softmax(z), stable."""
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return float(-(y * (z - lse)).sum() / z.shape[0])


def cross_entropy_grad(z, y):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True) - y) / z.shape[0]


def cross_entropy_naive(z, y):
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return float(-(y * np.log(p)).sum() / z.shape[0])


def mse_sum(a, y):
    """Sum over the batch of the per-sample mean squared error."""
    return float(((a - y) ** 2).mean(axis=1).sum())


def mse_sum_grad(a, y):
    return 2 * (a - y) / a.shape[1]


class Momentum:
    """Course scheduler: change = momentum * change + eta * gradient (Keras's rule)."""

    def __init__(self, eta, momentum):
        self.eta, self.momentum, self.change = eta, momentum, 0.0

    def update_change(self, gradient):
        self.change = self.momentum * self.change + self.eta * gradient
        return self.change


class RMSprop:
    """Course scheduler with rho and epsilon inside the square root (Keras's rule);
    ``outside=True`` puts epsilon outside the root (torch's)."""

    def __init__(self, eta, rho, eps=1e-7, outside=False):
        self.eta, self.rho, self.eps, self.outside, self.second = eta, rho, eps, outside, 0.0

    def update_change(self, gradient):
        self.second = self.rho * self.second + (1 - self.rho) * gradient * gradient
        if self.outside:
            return self.eta * gradient / (np.sqrt(self.second) + self.eps)
        return self.eta * gradient / np.sqrt(self.second + self.eps)


class AdamStep:
    """``step(params, grads)`` in place, torch's Adam rule; ``no_correction``: the bias
    correction is left out."""

    def __init__(self, lr, beta_1=0.9, beta_2=0.999, eps=1e-8, no_correction=False):
        self.lr, self.b1, self.b2, self.eps, self.nc = lr, beta_1, beta_2, eps, no_correction
        self.m, self.v, self.t = {}, {}, 0

    def step(self, params, grads):
        self.t += 1
        for k, p in params.items():
            g = grads[k]
            self.m[k] = self.b1 * self.m.get(k, 0) + (1 - self.b1) * g
            self.v[k] = self.b2 * self.v.get(k, 0) + (1 - self.b2) * g * g
            mh = self.m[k] if self.nc else self.m[k] / (1 - self.b1 ** self.t)
            vh = self.v[k] if self.nc else self.v[k] / (1 - self.b2 ** self.t)
            p -= self.lr * mh / (np.sqrt(vh) + self.eps)
