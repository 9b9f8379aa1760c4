"""The batched layers of the torch population: each spec layer kind (and the fused first
convolution with its max pooling) gives every member what its own serial torch Trainer
computes, ties in max pooling go where max_pool2d sends them, and the reused buffers of
the fused stage cannot silently corrupt a pending backward pass."""
import numpy as np
import pytest
import torch
from torch import nn

from experiments import datasets
from scratch import spec as S
from scratch.data import epoch_batches
from torch_models import Trainer, build
from torch_models.population import Population
from torch_models.population_layers import PooledProduct, Workspace, stages

SOFTMAX = S.Dense(10, activation="softmax")
ARCHS = {  # name: (layers, expected first stage): every layer kind and fused/unfused path
    "conv_relu_pool (fused)": ((S.Conv2D(4, 3, activation="relu"), S.MaxPool2D(2), S.Flatten(),
                                S.Dense(8, activation="relu"), SOFTMAX), "_SharedConvPool"),
    "conv_pool, no activation (fused)": ((S.Conv2D(3, 3), S.MaxPool2D(2), S.Flatten(), SOFTMAX), "_SharedConvPool"),
    "same conv, odd 3x3 pool (fused, cut edge)": ((S.Conv2D(3, 3, padding="same", activation="relu"),
                                                   S.MaxPool2D(3), S.Flatten(), SOFTMAX), "_SharedConvPool"),
    "conv_sigmoid_pool": ((S.Conv2D(3, 3, activation="sigmoid"), S.MaxPool2D(2), S.Flatten(), SOFTMAX), "_SharedConv"),
    "overlapping pool": ((S.Conv2D(3, 3, activation="relu"), S.MaxPool2D(3, strides=1), S.Flatten(), SOFTMAX),
                         "_SharedConv"),
    "asymmetric same max pool": ((S.Conv2D(3, 2, activation="tanh"), S.MaxPool2D(2, padding="same"), S.Flatten(),
                                  SOFTMAX), "_SharedConv"),
    "strided same conv": ((S.Conv2D(3, 3, strides=2, padding="same", activation="leaky_relu"), S.Flatten(), SOFTMAX),
                          "_Module"),
    "two convs, same avg pool": ((S.Conv2D(3, 3, activation="relu"), S.MaxPool2D(2, strides=1),
                                  S.Conv2D(4, 2, strides=2, padding="same", activation="relu"),
                                  S.AvgPool2D(2, padding="same"), S.Flatten(), S.Dense(6, activation="tanh"), SOFTMAX),
                                 "_SharedConv"),
    "channel softmax": ((S.Conv2D(3, 3, activation="softmax"), S.Flatten(), SOFTMAX), "_SharedConv"),
    "activation and pool on the data": ((S.Activation("tanh"), S.MaxPool2D(2), S.Conv2D(3, 2, activation="relu"),
                                         S.Flatten(), SOFTMAX), "_Module"),
    "dense first, hidden softmax": ((S.Flatten(), S.Dense(12, activation="softmax"), S.Activation("relu"), SOFTMAX),
                                    "_Module"),
    "dense first, relu in place": ((S.Flatten(), S.Dense(12, activation="relu"), S.Activation("relu"), SOFTMAX),
                                   "_Module"),
}


def _follow(layers, loss="categorical_crossentropy", optimizer="momentum", data=None, steps=8):
    """Objectives and weights of a 3-member float64 population against its serial cells."""
    data = data or datasets.digits(dtype=np.float64, limit=100)
    etas, lmbdas = np.array([0.05, 0.1, 0.02]), np.array([0.0, 1e-3, 1e-2])
    population = Population(layers, data.input_shape, etas, lmbdas, loss=loss, optimizer=optimizer, dtype="float64")
    cells = [Trainer(layers, data.input_shape, loss=loss, optimizer=optimizer, learning_rate=e, l2=l, dtype="float64")
             for e, l in zip(etas, lmbdas)]
    x, y = population.tensors(data.x_train, data.y_train)
    batches = epoch_batches(x.shape[0], 10, 0, 0)[:steps]
    np.testing.assert_allclose(population.train_epoch(x, y, batches),
                               [c.train_epoch(x, y, batches) for c in cells], rtol=1e-12, atol=0)
    for i, c in enumerate(cells):
        for name, w in c._body.named_parameters():
            torch.testing.assert_close(population.params[name][i], w.detach(), rtol=1e-12,
                                       atol=1e-12 * float(w.detach().abs().max()))
        ev, ref = population.evaluate_batches(x, y, 1000), c.evaluate_batches(x, y, 1000)
        assert ev["loss"][i] == pytest.approx(ref["loss"], rel=1e-12) and ev["accuracy"][i] == ref["accuracy"]
    return population


@pytest.mark.parametrize("name", list(ARCHS))
def test_every_layer_kind_follows_the_serial_trainer(name):
    layers, first = ARCHS[name]
    population = _follow(layers)
    assert type(population._stages[0]).__name__ == first


@pytest.mark.parametrize("loss", ["mse", "binary_crossentropy"])
def test_the_other_losses_follow_the_serial_trainer(loss):
    _follow((S.Conv2D(3, 3, activation="relu"), S.MaxPool2D(2), S.Flatten(), S.Dense(10, activation="sigmoid")), loss)


def test_several_input_channels():
    data = datasets.synthetic(n=60, input_shape=(3, 7, 7), dtype=np.float64, seed=1)
    _follow((S.Conv2D(4, 2, activation="relu"), S.MaxPool2D(2), S.Flatten(), SOFTMAX), data=data)


def _members_of(model, size, seed=0):
    """Stacked parameters (requiring grad) of ``size`` differently perturbed copies of ``model``."""
    gen = torch.Generator().manual_seed(seed)
    return {n: (p.detach() + torch.randint(-1, 2, (size,) + p.shape, generator=gen, dtype=p.dtype)).requires_grad_()
            for n, p in model.named_parameters()}


def test_fused_pooling_sends_tied_gradients_where_max_pool2d_does():
    """Small integers everywhere, so every sum is exact: many tied maxima, and both the
    outputs and the weight gradients must be equal bit for bit."""
    layers = (S.Conv2D(3, 2, activation="relu"), S.MaxPool2D(2), S.Flatten(), SOFTMAX)
    model = build(layers, (2, 5, 5), dtype=torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randint(-1, 2, p.shape, dtype=p.dtype))
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 2, (6, 2, 5, 5), generator=gen).double()
    first = stages(model)[0]
    assert type(first).__name__ == "_SharedConvPool"
    params = _members_of(model, 4)
    maps = first(x, params, 4, True)                         # (P*O, N, Hp, Wp)
    upstream = torch.randint(-3, 4, maps.shape, generator=gen).double()
    ours = torch.autograd.grad((maps * upstream).sum(), [params["0.weight"], params["0.bias"]])
    conv, relu, pool = model.get_submodule("0"), model.get_submodule("0_relu"), model.get_submodule("1")
    ties = 0
    for p in range(4):  # the serial modules, member by member
        w = params["0.weight"][p].detach().requires_grad_()
        b = params["0.bias"][p].detach().requires_grad_()
        a = relu(torch.nn.functional.conv2d(x, w, b))
        windows = a[:, :, :4, :4].unfold(2, 2, 2).unfold(3, 2, 2).flatten(-2)
        top = windows.amax(-1, keepdim=True)
        ties += int((((windows == top).sum(-1) > 1) & (top[..., 0] > 0)).sum())  # ties that pass a gradient
        out = pool(a)
        torch.testing.assert_close(maps.view(4, 3, 6, 2, 2)[p].transpose(0, 1), out, rtol=0, atol=0)
        g = torch.autograd.grad((out * upstream.view(4, 3, 6, 2, 2)[p].transpose(0, 1)).sum(), [w, b])
        torch.testing.assert_close(ours[0][p], g[0], rtol=0, atol=0)
        torch.testing.assert_close(ours[1][p], g[1], rtol=0, atol=0)
    assert conv.out_channels == 3 and ties > 10


def test_pooled_product_gradient_without_ties():
    w = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    cols = torch.randn(4, 4, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: PooledProduct.apply(v, cols, Workspace()), (w,))


def test_a_second_forward_pass_makes_a_pending_backward_pass_fail():
    """The fused stage reuses its buffers; autograd's version check must catch an
    overwrite instead of returning wrong gradients."""
    space = Workspace()
    w = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    cols = torch.randn(4, 5, 7, dtype=torch.float64)
    first = PooledProduct.apply(w, cols, space)
    PooledProduct.apply(w * 2, cols, space)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        first.sum().backward()


@pytest.mark.parametrize("module", [nn.BatchNorm2d(1), nn.Dropout(0.5), nn.Conv2d(1, 2, 3, dilation=2)])
def test_modules_the_spec_does_not_make_are_refused(module):
    with pytest.raises(ValueError, match="population"):
        stages(nn.Sequential(module, nn.Flatten(), nn.LazyLinear(2)))


def test_member_state_is_a_copy_in_the_torch_layout():
    layers = ARCHS["conv_relu_pool (fused)"][0]
    population = Population(layers, (1, 8, 8), [0.1, 0.2], [0.0, 0.0])
    state = population.member_state(1)
    model = Trainer(layers, (1, 8, 8)).model
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in model.named_parameters()}
    state["0.weight"].zero_()
    assert population.params["0.weight"][1].abs().sum() > 0


def test_evaluation_before_training_then_training():
    """The fused stage's buffers made under inference mode still serve training."""
    data = datasets.digits(dtype=np.float64, limit=100)
    layers = ARCHS["conv_relu_pool (fused)"][0]
    population = Population(layers, data.input_shape, [0.05, 0.1], [0.0, 1e-3], dtype="float64")
    cells = [Trainer(layers, data.input_shape, learning_rate=e, l2=l, dtype="float64")
             for e, l in ((0.05, 0.0), (0.1, 1e-3))]
    x, y = population.tensors(data.x_train, data.y_train)
    before = population.evaluate_batches(x, y, 1000)
    assert before["loss"] == pytest.approx([c.evaluate_batches(x, y, 1000)["loss"] for c in cells], rel=1e-12)
    batches = epoch_batches(x.shape[0], 10, 0, 0)[:3]
    np.testing.assert_allclose(population.train_epoch(x, y, batches), [c.train_epoch(x, y, batches) for c in cells],
                               rtol=1e-12, atol=0)


def test_the_reference_model_builds_no_torch_optimizer():
    """The population steps with the scratch rules; a torch.optim optimizer would only cost
    the import of torch._dynamo (seconds) at the first one of a process."""
    population = Population(ARCHS["conv_relu_pool (fused)"][0], (1, 8, 8), [0.1], [0.0], optimizer="adam")
    assert population.reference.optimizer is None and type(population.optimizer).__name__ == "Adam"
    with pytest.raises(ValueError, match="unknown optimizer 'bogus'"):
        Population(ARCHS["conv_relu_pool (fused)"][0], (1, 8, 8), [0.1], [0.0], optimizer="bogus")
