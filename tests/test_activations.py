"""The zero-gradient operator against a float64 reference, with planted exact zeros."""

import pytest
import torch
import torch.nn.functional as F
from helpers.gradients import backward

from relulab.nn import activations

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
SLOPE = {"relu": 0.0, "leaky_relu": 0.01}


def planted(dtype, n=257):
    """Random inputs with exact zeros (and a negative zero) planted, and a random upstream."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    x[::7] = 0.0
    x[3] = -0.0
    upstream = torch.randn(n, generator=g, dtype=torch.float64) * 3
    return x.to(dtype), upstream.to(dtype)


def reference_grad(x, upstream, slope, zero_grad):
    """d/dx in float64: 1 for x > 0, slope for x < 0, zero_grad at x == 0, times upstream."""
    x64, up64 = x.double(), upstream.double()
    one = torch.ones_like(x64)
    derivative = torch.where(x64 > 0, one, slope * one)
    derivative = torch.where(x64 == 0, zero_grad * one, derivative)
    return derivative * up64


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
@pytest.mark.parametrize("zero_grad", [0.0, 0.5, 1.0, 0.3])
def test_kinked_backward_is_zero_grad_times_upstream(name, dtype, zero_grad, implementation):
    x, upstream = planted(dtype)
    out, grad = backward(activations.build(name, zero_grad), x, upstream)
    torch_op = torch.nn.ReLU() if name == "relu" else torch.nn.LeakyReLU()
    torch_out, torch_grad = backward(torch_op, x, upstream)
    assert torch.equal(out, torch_out), "forward must be PyTorch's own op"
    nonzero = x != 0
    assert torch.equal(grad[nonzero], torch_grad[nonzero]), "backward away from 0 is PyTorch's"
    at_zero = ~nonzero
    expected = upstream[at_zero] * zero_grad  # in the run's own precision
    assert torch.equal(grad[at_zero], expected)
    ref = reference_grad(x, upstream, SLOPE[name], zero_grad)
    tolerance = {
        torch.float64: 1e-15,
        torch.float32: 1e-6,
        torch.float16: 2e-3,
        torch.bfloat16: 1e-2,
    }
    assert torch.allclose(grad.double(), ref, rtol=tolerance[dtype], atol=0)


def test_zero_grad_is_not_a_constant():
    """The chain rule: at 0 the gradient scales with upstream (a known implementation bug)."""
    x = torch.zeros(4, requires_grad=True)
    upstream = torch.tensor([0.0, 1.0, -2.0, 5.0])
    activations.build("relu", zero_grad=0.5)(x).backward(upstream)
    assert torch.equal(x.grad, torch.tensor([0.0, 0.5, -1.0, 2.5]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero_grad", [0.0, 1.0, 0.5])
def test_prelu_matches_torch_and_float64_reference(dtype, zero_grad):
    x, upstream = planted(dtype)
    ours = activations.build("prelu", zero_grad)
    theirs = torch.nn.PReLU().to(dtype)
    ours = ours.to(dtype)
    out, grad = backward(ours, x, upstream)
    torch_out, torch_grad = backward(theirs, x, upstream)
    assert torch.equal(out, torch_out)
    nonzero = x != 0
    assert torch.equal(grad[nonzero], torch_grad[nonzero])
    assert torch.equal(grad[~nonzero], upstream[~nonzero] * zero_grad)
    ref = reference_grad(x, upstream, 0.25, zero_grad)
    assert torch.allclose(grad.double(), ref, rtol=1e-2 if dtype.itemsize == 2 else 1e-6)
    # The slope's own gradient is PyTorch's.
    assert torch.allclose(ours.weight.grad.double(), theirs.weight.grad.double(), rtol=1e-2)


def test_prelu_per_channel_on_convolution_shaped_input():
    x = torch.randn(2, 3, 4, 4)
    ours = activations.build("prelu", 0.0, num_parameters=3)
    theirs = torch.nn.PReLU(3)
    assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize("zero_grad", [None, 0.0, 1.0])
def test_rrelu_eval_is_torch_and_training_noise_in_range(zero_grad):
    x, upstream = planted(torch.float64)
    module = activations.build("rrelu", zero_grad).eval()
    assert torch.equal(module(x), F.rrelu(x, training=False))
    module.train()
    x = x.clone().requires_grad_(True)
    out = module(x)
    negative = x.detach() < 0
    slopes = out.detach()[negative] / x.detach()[negative]
    assert slopes.min() >= 1 / 8 and slopes.max() <= 1 / 3
    out.backward(upstream)
    if zero_grad is not None:
        at_zero = x.detach() == 0
        assert torch.equal(x.grad[at_zero], upstream[at_zero] * zero_grad)


def test_rrelu_generator_makes_noise_reproducible():
    x = -torch.rand(100, dtype=torch.float64)
    first = activations.build("rrelu", 0.0, generators=[torch.Generator().manual_seed(3)])
    second = activations.build("rrelu", 1.0, generators=[torch.Generator().manual_seed(3)])
    assert torch.equal(first(x), second(x))


def test_none_keeps_pytorch_modules():
    assert type(activations.build("relu")) is torch.nn.ReLU
    assert type(activations.build("leaky_relu")) is torch.nn.LeakyReLU
    assert type(activations.build("gelu")) is torch.nn.GELU


@pytest.mark.parametrize("name", activations.SMOOTH)
def test_smooth_activation_rejects_zero_grad(name):
    with pytest.raises(ValueError, match="kinked"):
        activations.build(name, zero_grad=0.0)


def test_unknown_activation_names_the_allowed():
    with pytest.raises(ValueError, match="allowed: relu, leaky_relu"):
        activations.build("swish")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "0.5"])
def test_zero_grad_must_be_finite_number(bad):
    with pytest.raises(ValueError, match="finite number"):
        activations.build("relu", zero_grad=bad)
