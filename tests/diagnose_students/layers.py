"""Course-style NumPy layers written the way students write them: loops over one image at a
time, canonical layouts (NCHW, W[out, in, kh, kw], W[in, out]), and a ``bugs`` set that
plants one mistake each. Correct when ``bugs`` is empty."""
import numpy as np


def relu(z):
    return np.maximum(z, 0)


def relu_prime(z):
    return (z > 0).astype(float)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def sigmoid_prime(z):
    s = sigmoid(z)
    return s * (1 - s)


ACTS = {"relu": (relu, relu_prime), "sigmoid": (sigmoid, sigmoid_prime), None: (None, None)}


def pad_same(x, k, s):
    """TensorFlow's 'same': the odd padding cell at the bottom/right."""
    h = x.shape[-1]
    out = -(-h // s)
    total = max((out - 1) * s + k - h, 0)
    return (total // 2, total - total // 2)


class LoopConv:
    """Conv2D with square kernels and strides, 'valid' or 'same', optional fused activation."""

    def __init__(self, W, b, stride=1, padding="valid", act=None, bugs=()):
        self.W, self.b, self.s, self.padding, self.bugs = W, b, stride, padding, set(bugs)
        self.f, self.fp = ACTS[act]

    def _pad(self, x):
        if self.padding == "valid":
            return x, (0, 0)
        k = self.W.shape[2]
        before, after = pad_same(x, k, self.s)
        if "padding-side" in self.bugs:
            before, after = after, before
        return np.pad(x, ((0, 0), (before, after), (before, after))), (before, after)

    def forward(self, x):
        W = self.W
        if "kernel-flipped" in self.bugs:
            W = W[:, :, ::-1, ::-1]
        if "kernel-transposed" in self.bugs:
            W = W.transpose(0, 1, 3, 2)
        if "in-out-swapped" in self.bugs:
            W = W.transpose(1, 0, 2, 3)
        o, c, k, _ = W.shape
        self.x, self.Wf = x, W
        outs = []
        for img in x:  # one image at a time
            xp, self.pads = self._pad(img)
            ho = (xp.shape[1] - k) // self.s + 1
            y = np.zeros((o, ho, ho))
            for f in range(o):
                for ch in range(c):
                    for i in range(ho):
                        for j in range(ho):
                            win = xp[ch, i * self.s:i * self.s + k, j * self.s:j * self.s + k]
                            v = np.sum(win * W[f, ch])
                            if "one-channel-only" in self.bugs:
                                y[f, i, j] = v  # '=' where '+=' belongs
                            else:
                                y[f, i, j] += v
                y[f] += self.b[f]
            if "one-filter-only" in self.bugs:
                y[:-1] = 0.0
            outs.append(y)
        z = np.array(outs)
        if "scale" in self.bugs:
            z = z / k
        if "epsilon" in self.bugs:
            z = z + 1e-9
        self.z = z
        y = self.f(z) if self.f else z
        self.y = y
        return y

    def backward(self, dy):
        W = self.Wf
        o, c, k, _ = W.shape
        n = dy.shape[0]
        if self.f:
            if "activation-derivative-missing" in self.bugs:
                dz = dy
            elif "activation-derivative-at-output" in self.bugs:
                dz = dy * self.fp(self.y)
            elif "activation-derivative-of-upstream" in self.bugs:
                dz = dy * self.fp(dy)
            else:
                dz = dy * self.fp(self.z)
        else:
            dz = dy * relu_prime(self.z) if "activation-derivative-extra" in self.bugs else dy
        s = self.s
        if "stride-ignored-in-backward" in self.bugs:
            s = 1
        if "conv-backward-stride-off-by-one" in self.bugs:
            s = self.s - 1
        self.dW = np.zeros_like(W)
        self.db = np.zeros_like(self.b)
        dxs = []
        for m in range(n):
            g = dz[(m + 1) % n] if "batch-mispaired" in self.bugs else dz[m]
            xp, pads = self._pad(self.x[m])
            dxp = np.zeros_like(xp)
            ho = g.shape[1]
            for f in range(o):
                for i in range(ho):
                    for j in range(ho):
                        win = xp[:, i * self.s:i * self.s + k, j * self.s:j * self.s + k]
                        self.dW[f] += g[f, i, j] * win
                        sl = (slice(None), slice(i * s, i * s + k), slice(j * s, j * s + k))
                        if "overlap-overwrites" in self.bugs:
                            dxp[sl] = g[f, i, j] * W[f]
                        else:
                            dxp[sl] += g[f, i, j] * W[f]
            if "bias-not-summed" in self.bugs:
                self.db = g.sum(axis=(1, 2))
            else:
                self.db += g.sum(axis=(1, 2))
            h = self.x.shape[2]
            dxs.append(dxp[:, pads[0]:pads[0] + h, pads[0]:pads[0] + h])
        if "kernel-gradient-flipped" in self.bugs:
            self.dW = self.dW[:, :, ::-1, ::-1]
        if "non-finite" in self.bugs:
            with np.errstate(divide="ignore"):
                self.dW = self.dW / (self.dW > 0)  # a division by zero
        return np.array(dxs)


class LoopMaxPool:
    """Max pooling, square windows, 'valid'; gradient to the first maximum (row-major)."""

    def __init__(self, k, stride, bugs=()):
        self.k, self.s, self.bugs = k, stride, set(bugs)

    def forward(self, x):
        self.x = x
        n, c, h, _ = x.shape
        ho = (h - self.k) // self.s + 1
        y = np.zeros((n, c, ho, ho))
        for m in range(n):
            for ch in range(c):
                for i in range(ho):
                    for j in range(ho):
                        y[m, ch, i, j] = x[m, ch, i * self.s:i * self.s + self.k, j * self.s:j * self.s + self.k].max()
        self.y = y
        return y

    def backward(self, dy):
        dx = np.zeros_like(self.x)
        n, c, ho, _ = dy.shape
        k = self.k
        s = 1 if "stride-ignored-in-backward" in self.bugs else self.s
        for m in range(n):
            for ch in range(c):
                for i in range(ho):
                    for j in range(ho):
                        win = self.x[m, ch, i * self.s:i * self.s + k, j * self.s:j * self.s + k]
                        if "ties-all-get-gradient" in self.bugs:
                            mask = (win == win.max()).astype(float)
                        else:
                            mask = np.zeros(win.shape)
                            mask[np.unravel_index(np.argmax(win), win.shape)] = 1.0
                        sl = (m, ch, slice(i * s, i * s + k), slice(j * s, j * s + k))
                        if "overlap-overwrites" in self.bugs:
                            dx[sl] = mask * dy[m, ch, i, j]
                        else:
                            dx[sl] += mask * dy[m, ch, i, j]
        return dx


class LoopAvgPool:
    """Average pooling, 'same' padding, square windows; the mean over the real cells."""

    def __init__(self, k, bugs=()):
        self.k, self.bugs = k, set(bugs)

    def forward(self, x):
        n, c, h, _ = x.shape
        k = self.k
        ho = -(-h // k)
        y = np.zeros((n, c, ho, ho))
        for i in range(ho):
            for j in range(ho):
                win = x[:, :, i * k:i * k + k, j * k:j * k + k]  # a slice past the edge is shorter
                count = k * k if "avgpool-counts-padding" in self.bugs else win.shape[2] * win.shape[3]
                y[:, :, i, j] = win.sum(axis=(2, 3)) / count
        return y


class Dense:
    """y = act(x W + b), W[in, out]."""

    def __init__(self, W, b, act=None, bugs=()):
        self.W, self.b, self.bugs = W, b, set(bugs)
        self.act = act

    def forward(self, x):
        self.x = x
        W = self.W.T if "in-out-swapped" in self.bugs else self.W
        z = x @ W + self.b
        self.z = z
        if self.act == "sigmoid":
            self.y = sigmoid(z)
        elif self.act == "softmax":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            self.y = e / e.sum(axis=1, keepdims=True)
        else:
            self.y = z
        return self.y

    def backward(self, dy):
        y = self.y
        if self.act == "sigmoid":
            dz = dy * sigmoid_prime(y) if "sigmoid-twice" in self.bugs else dy * y * (1 - y)
        elif self.act == "softmax":
            if "softmax-diagonal-jacobian" in self.bugs:
                dz = dy * y * (1 - y)
            else:
                dz = y * (dy - np.sum(dy * y, axis=1, keepdims=True))
        else:
            dz = dy
        self.dW = self.x.T @ dz
        self.db = dz.mean(axis=0) if "bias-mean" in self.bugs else dz.sum(axis=0)
        return dz @ self.W.T


def flatten(x, bugs=()):
    if "flatten-order" in bugs:
        return x.transpose(0, 2, 3, 1).reshape(x.shape[0], -1)  # H, W, C like Keras
    return x.reshape(x.shape[0], -1)
