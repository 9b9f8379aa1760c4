"""The layers of a torch population (:mod:`torch_models.population`): the modules of the
spec-built model, run for P members at once, differentiated by plain autograd.

:func:`stages` reads the children of the model (``torch_models.build``, without its
fused final activation) and returns one stage per child (or per fused group of
children). A stage is called ``stage(x, params, p, training)``: it maps the activations
``x`` of all ``p`` members to the next layer's, reading the member weights from
``params``, stacked tensors keyed by the model's parameter names (``(P,) + parameter
shape``: a Conv2d weight ``(P, out, in, kh, kw)``, a Linear weight ``(P, out, in)``, a
bias ``(P, out)``); ``training`` tells the fused first stage to keep what its backward
pass needs.

Layouts
-------
Activations travel in one of three layouts, chosen so that every product is one large
matrix product or one batched product and no big array is transposed:

* ``data``: ``(N,) + sample shape``, torch's own layout, shared by every member; the
  layers before the first parametric one run on it unchanged.
* ``maps``: feature maps of every member as a 4-D tensor of logical shape
  ``(P*C, N, H, W)`` (member ``p``'s channel ``c`` is plane ``p*C + c``) stored
  channels-last, i.e. memory order ``(P*C, H, W, N)``. A convolution's product comes out
  in that order, pooling and padding modules treat each ``(plane, sample)`` as an
  independent image (so the model's own modules run on it, their channels-last kernels
  vectorised over the samples), and a Flatten is a free view.
* ``features``: ``(P, F, N)``, the transpose of torch's ``(N, F)`` per member, so a
  Linear layer is ``W (P, O, F) @ x (P, F, N)`` and ``nn.Softmax(dim=1)`` still acts
  on the features.

The first parametric layer takes the shared data: a Conv2d is one GEMM of every
member's filters (``(P*O, C*kh*kw + 1)``, the bias as an extra column) with the im2col
columns of the batch (an extra row of ones); a Linear likewise. When that Conv2d is
followed by a ReLU (or no activation) and a non-overlapping MaxPool2d, the columns are
grouped by window offset, so pooling is a running max over one product per offset
(:class:`PooledProduct`, which routes the gradient to the first maximum as
``max_pool2d`` does) and the ReLU is applied after the max, which gives the same values
and gradients on a quarter of the elements. Later layers are batched products, one
member per batch entry.

Members never mix: every product, reduction and element-wise op keeps member ``p``'s
numbers apart from the others', so the gradient of the sum of the member objectives is
each member's own gradient, and a NaN stays in its member.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .builder import AvgPool2dSame

__all__ = ["PooledProduct", "Workspace", "member_losses", "stages"]

DATA, MAPS, FEATURES = "data", "maps", "features"
#: Modules applied element by element: they run on every layout unchanged.
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Identity)
#: Modules acting on each (plane, sample) image alone: they run on ``data`` and ``maps``.
_SPATIAL = (nn.MaxPool2d, nn.AvgPool2d, AvgPool2dSame, nn.ZeroPad2d, nn.ConstantPad2d)
#: Activations a first Conv2d and its max pooling absorb (ReLU commutes with the max).
_FUSABLE_ACT = (nn.ReLU, nn.Identity)


# --------------------------------------------------------------------------- pooling


class Workspace:
    """Buffers one stage reuses from step to step, so its largest arrays are not
    allocated (and their memory pages not faulted in again) at every step."""

    def __init__(self):
        self._buffers = {}

    def take(self, name, shape, like):
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != like.dtype:
            with torch.inference_mode(False):  # a normal tensor, usable by training and evaluation
                buf = self._buffers[name] = torch.empty(shape, dtype=like.dtype)
        return buf


def pooled_max(w, cols, space, leads=None):
    """``max over k of w @ cols[k]`` for ``w`` (R, K) and ``cols`` (W, K, L), W window
    offsets: (R, L), a buffer of ``space``. Each product is made in the workspace's
    buffer ``"z"`` and folded into the running maximum at once, so the W products are
    never stored together. With ``leads`` (W - 1, R, L), ``leads[k - 1]`` is set to 1.0
    where offset k is strictly above the maximum of the offsets before it (so the first
    maximum of each window is at the last offset that leads there)."""
    z = space.take("z", (w.shape[0], cols.shape[2]), w)
    m = space.take("max", z.shape, w)
    torch.mm(w, cols[0], out=m)
    for k in range(1, cols.shape[0]):
        torch.mm(w, cols[k], out=z)
        if leads is not None:
            torch.gt(z, m, out=leads[k - 1])
        torch.maximum(m, z, out=m)
    return m


class PooledProduct(torch.autograd.Function):
    """:func:`pooled_max` with its gradient for ``w``: the first convolution and a
    non-overlapping max pooling in one.

    The gradient of each output goes to the first window offset holding the maximum,
    as ``max_pool2d`` routes it (it keeps the first of tied values in window order). The
    forward pass records, per offset, where it took the lead; the backward pass walks
    the offsets from the last and gives each leading position what is left of the
    gradient.
    """

    @staticmethod
    def forward(ctx, w, cols, space):
        leads = space.take("leads", (cols.shape[0] - 1, w.shape[0], cols.shape[2]), w)
        pooled_max(w, cols, space, leads)
        # Saved aliases of the workspace's buffers share their version counters: a later
        # forward pass overwriting them makes this one's backward pass raise, not lie.
        ctx.save_for_backward(cols, leads.detach())
        ctx.space = space
        return space.take("max", leads.shape[1:], w).detach()

    @staticmethod
    def backward(ctx, g):
        cols, leads = ctx.saved_tensors
        rest = ctx.space.take("rest", g.shape, g)  # the gradient not yet given to an offset
        dz = ctx.space.take("z", g.shape, g)
        rest.copy_(g)
        dw = g.new_zeros((cols.shape[1], g.shape[0]))  # transposed: cols[k] @ dz.T is the fast product
        for k in range(cols.shape[0] - 1, 0, -1):
            torch.mul(rest, leads[k - 1], out=dz)   # the positions offset k leads, and holds
            rest.sub_(dz)                            # exact: what is left, or 0
            dw.addmm_(cols[k], dz.T)
        dw.addmm_(cols[0], rest.T)                   # offset 0 holds what no later one took
        return dw.T, None, None


# --------------------------------------------------------------------------- stages


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class _Module:
    """A parameterless module run as is (element-wise, or spatial on ``data``/``maps``)."""

    def __init__(self, module):
        self.module = module

    def __call__(self, x, params, p, training):
        return self.module(x)


class _MapsSoftmax:
    """``nn.Softmax(dim=1)`` over each member's channels in ``maps`` (P*C, N, H, W)."""

    def __init__(self, channels):
        self.channels = channels

    def __call__(self, x, params, p, training):
        return torch.softmax(x.unflatten(0, (p, self.channels)), 1).flatten(0, 1)


class _Flatten:
    """``maps`` (P*C, N, H, W) -> ``features`` (P, C*H*W, N), features in torch's
    (c, h, w) order; a view of channels-last maps."""

    def __call__(self, x, params, p, training):
        return x.permute(0, 2, 3, 1).reshape(p, -1, x.shape[1])


class _Conv:
    """Geometry and weights of one Conv2d of the model (zero padding, no dilation or groups)."""

    def __init__(self, name, conv: nn.Conv2d):
        if conv.groups != 1 or _pair(conv.dilation) != (1, 1) or conv.padding_mode != "zeros" \
                or isinstance(conv.padding, str) or conv.bias is None:
            raise ValueError(f"population: child {name!r} ({conv!r}) is not a convolution of the spec")
        self.weight, self.bias = f"{name}.weight", f"{name}.bias"
        self.out = conv.out_channels
        self.kernel, self.stride, self.padding = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.padding)

    def out_hw(self, h, w):
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    def augmented_weights(self, params, p):
        """(P*O, C*kh*kw + 1): every member's filters, the bias as the last column."""
        w = params[self.weight]
        return torch.cat([w.reshape(p * self.out, -1), params[self.bias].reshape(p * self.out, 1)], 1)

    def shared_columns(self, x, pool=(1, 1)):
        """im2col of the shared data ``x`` (N, C, H, W), grouped by the offset in a
        ``pool`` window of conv outputs: ((ph*pw, C*kh*kw + 1, Hp*Wp*N), (Hp, Wp)).

        Rows are in the weight's (c, i, j) order plus a last row of ones (the bias's);
        columns are ordered (pooled row, pooled column, sample); conv outputs no window
        reaches are left out. One strided view of ``x`` and one copy."""
        n, c = x.shape[:2]
        ho, wo = self.out_hw(*x.shape[2:])
        (ph, pw), (kh, kw), (sh, sw) = pool, self.kernel, self.stride
        hp, wp = ho // ph, wo // pw
        if self.padding != (0, 0):
            x = F.pad(x, (self.padding[1], self.padding[1], self.padding[0], self.padding[0]))
        s_n, s_c, s_h, s_w = x.stride()
        view = x.as_strided((ph, pw, c, kh, kw, hp, wp, n),
                            (sh * s_h, sw * s_w, s_c, s_h, s_w, ph * sh * s_h, pw * sw * s_w, s_n))
        k = c * kh * kw
        cols = x.new_empty((ph * pw, k + 1, hp * wp * n))
        cols[:, :k].view(ph, pw, c, kh, kw, hp, wp, n).copy_(view)
        cols[:, k] = 1
        return cols, (hp, wp)

    def member_columns(self, x, p):
        """im2col of ``maps`` (P*C, N, H, W), member by member: ((P, C*kh*kw, Ho*Wo*N), (Ho, Wo))."""
        n = x.shape[1]
        ho, wo = self.out_hw(*x.shape[2:])
        cols = F.unfold(x, self.kernel, padding=self.padding, stride=self.stride)  # (P*C, N*kh*kw, L): (n, i, j)
        kk = self.kernel[0] * self.kernel[1]
        cols = cols.view(p, -1, n, kk, ho * wo).permute(0, 1, 3, 4, 2)           # (P, C, kh*kw, L, N)
        return cols.reshape(p, -1, ho * wo * n), (ho, wo)


def _with_ones(x):
    """``x`` (F, N) with a row of ones appended (the bias's row), contiguous: (F + 1, N)."""
    out = x.new_empty((x.shape[0] + 1, x.shape[1]))
    out[:-1] = x
    out[-1] = 1
    return out


class _SharedConv(_Conv):
    """The first Conv2d: ``data`` (N, C, H, W) -> ``maps`` (P*O, N, Ho, Wo), one GEMM
    ``(P*O, C*kh*kw+1) @ (C*kh*kw+1, Ho*Wo*N)``."""

    def __call__(self, x, params, p, training):
        cols, (ho, wo) = self.shared_columns(x)
        z = torch.mm(self.augmented_weights(params, p), cols[0])
        return z.view(p * self.out, ho, wo, x.shape[0]).permute(0, 3, 1, 2)


class _SharedConvPool(_Conv):
    """The first Conv2d, a ReLU (or no activation) and a non-overlapping MaxPool2d
    (kernel = stride, no padding): ``data`` -> ``maps`` (P*O, N, Hp, Wp).

    The columns are grouped by window offset, so the pooling is a max over the products
    of one filter matrix with each offset's columns (:class:`PooledProduct`). The ReLU
    comes after the max, in place, on a quarter of the elements (for a 2x2 pool):
    ``relu(max z) = max relu(z)``, and a pooled output of 0 passes no gradient either
    way (``max_pool2d`` sends it to a ReLU output of 0)."""

    def __init__(self, name, conv, relu, pool: nn.MaxPool2d):
        super().__init__(name, conv)
        self.relu, self.pool, self.space = relu, _pair(pool.kernel_size), Workspace()

    def __call__(self, x, params, p, training):
        cols, (hp, wp) = self.shared_columns(x, self.pool)
        w = self.augmented_weights(params, p)
        m = PooledProduct.apply(w, cols, self.space) if training else pooled_max(w, cols, self.space)
        if self.relu:
            m = torch.relu_(m)
        return m.view(p * self.out, hp, wp, x.shape[0]).permute(0, 3, 1, 2)


class _MemberConv(_Conv):
    """A later Conv2d: ``maps`` (P*C, N, H, W) -> ``maps`` (P*O, N, Ho, Wo), one batched
    product of each member's filters (P, O, C*kh*kw) with its own columns."""

    def __call__(self, x, params, p, training):
        cols, (ho, wo) = self.member_columns(x, p)
        w = params[self.weight].reshape(p, self.out, -1)
        z = torch.bmm(w, cols).add_(params[self.bias].unsqueeze(2))
        return z.view(p * self.out, ho, wo, x.shape[1]).permute(0, 3, 1, 2)


class _SharedDense:
    """The first Linear: ``data`` (N, F) -> ``features`` (P, O, N), one GEMM
    ``(P*O, F+1) @ (F+1, N)``."""

    def __init__(self, name, linear: nn.Linear):
        if linear.bias is None:
            raise ValueError(f"population: child {name!r} ({linear!r}) has no bias; not a Dense of the spec")
        self.weight, self.bias, self.out = f"{name}.weight", f"{name}.bias", linear.out_features

    def __call__(self, x, params, p, training):
        w = torch.cat([params[self.weight].reshape(p * self.out, -1), params[self.bias].reshape(p * self.out, 1)], 1)
        return torch.mm(w, _with_ones(x.T)).view(p, self.out, x.shape[0])


class _MemberDense(_SharedDense):
    """A later Linear: ``features`` (P, F, N) -> (P, O, N), ``b + W @ x`` per member."""

    def __call__(self, x, params, p, training):
        # The bias added after the product: baddbmm would first copy it, expanded, into
        # the whole output (measured 0.4 ms of its 1.8 ms for the first Dense of course_cnn).
        return torch.bmm(params[self.weight], x).add_(params[self.bias].unsqueeze(2))


def _fusable_pool(module) -> bool:
    return (isinstance(module, nn.MaxPool2d) and _pair(module.kernel_size) == _pair(module.stride)
            and _pair(module.padding) == (0, 0) and _pair(module.dilation) == (1, 1)
            and not module.ceil_mode and not module.return_indices)


def stages(body: nn.Sequential) -> list:
    """The population stages of ``body`` (the spec-built model, without a final activation
    fused with the loss), in order: callables ``stage(x, params, p, training)``.

    The activations start as shared ``data`` and end as ``features`` (P, K, N); a
    ValueError names a child this module cannot batch (a Dropout with p > 0, a module
    torch_models.build does not make)."""
    children = list(body.named_children())
    layout, channels, out, i = DATA, None, [], 0
    while i < len(children):
        name, m = children[i]
        i += 1
        if isinstance(m, nn.Conv2d):
            if layout == DATA:
                act = children[i][1] if i < len(children) and isinstance(children[i][1], _FUSABLE_ACT) else None
                j = i + (act is not None)
                if j < len(children) and _fusable_pool(children[j][1]):
                    out.append(_SharedConvPool(name, m, isinstance(act, nn.ReLU), children[j][1]))
                    i = j + 1
                else:
                    out.append(_SharedConv(name, m))
            elif layout == MAPS:
                out.append(_MemberConv(name, m))
            else:
                raise ValueError(f"population: child {name!r} ({m!r}) follows a flat layer")
            layout, channels = MAPS, m.out_channels
        elif isinstance(m, nn.Linear):
            if layout == MAPS:
                raise ValueError(f"population: child {name!r} ({m!r}) needs a Flatten before it")
            out.append(_SharedDense(name, m) if layout == DATA else _MemberDense(name, m))
            layout = FEATURES
        elif isinstance(m, nn.Flatten):
            if layout == DATA:
                out.append(_Module(m))
            elif layout == MAPS:
                out.append(_Flatten())
                layout = FEATURES
            # on features the data are already flat: nn.Flatten of (N, F) is the identity
        elif isinstance(m, nn.Softmax) and m.dim == 1:
            out.append(_MapsSoftmax(channels) if layout == MAPS else _Module(m))
        elif isinstance(m, nn.Dropout) and m.p == 0:
            continue  # the identity
        elif isinstance(m, nn.ReLU) and out and isinstance(out[-1], (_SharedConv, _MemberConv, _SharedDense)):
            out.append(_ReluInPlace())
        elif isinstance(m, _ELEMENTWISE) or (isinstance(m, _SPATIAL) and layout != FEATURES):
            out.append(_Module(m))
        else:
            raise ValueError(f"population: child {name!r} ({m!r}) cannot be trained as a population")
    if layout == DATA:
        out.append(_Broadcast())
    elif layout == MAPS:
        raise ValueError("population: the model's output must be flat (end it with Flatten and Dense)")
    return out


class _ReluInPlace:
    """``nn.ReLU`` on a product's fresh output, in place: a product's backward pass needs
    its inputs, not its output, so no second array of that size is made."""

    def __call__(self, x, params, p, training):
        return torch.relu_(x)


class _Broadcast:
    """A model without parameters: every member's output is the shared data's,
    ``data`` (N, F) -> ``features`` (P, F, N)."""

    def __call__(self, x, params, p, training):
        return x.reshape(x.shape[0], -1).T.unsqueeze(0).expand(p, -1, -1)


# --------------------------------------------------------------------------- losses


def member_losses(name: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each member's mean data loss (P,), as :class:`torch_models.Trainer` computes it for
    its batch: ``logits`` in ``features`` layout (P, K, N), ``targets`` (K, N) shared.

    categorical_crossentropy: ``F.cross_entropy`` with probability targets, summed over the
    batch and divided by N; binary_crossentropy and mse: the mean over the K*N elements."""
    t = targets.unsqueeze(0).expand_as(logits)
    if name == "categorical_crossentropy":
        return F.cross_entropy(logits, t, reduction="none").sum(1) / logits.shape[2]
    if name == "binary_crossentropy":
        return F.binary_cross_entropy_with_logits(logits, t, reduction="none").mean((1, 2))
    if name == "mse":
        return F.mse_loss(logits, t, reduction="none").mean((1, 2))
    raise ValueError(f"loss: {name!r} has no population form")  # pragma: no cover - the loss table
