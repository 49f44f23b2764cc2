"""The fast zero-gradient ReLU is exactly the slow one, bit for bit.

The backward kernels relulab uses for speed (the compiled operator, and the Python
implementation's one- and two-pass kernels) compute the definition
``where(x == 0, zero_grad * grad, PyTorch's ReLU backward)``.
"""

import pytest
import torch
from helpers.gradients import DTYPES, bits, gradient, hard_inputs, same_bits_or_both_nan

from relulab.nn import activations


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero_grad", [1.0, 0.5, 0.3, 2.0, 1e-3, -0.5])
def test_fast_relu_backward_is_bitwise_the_definition(dtype, zero_grad, implementation):
    # NaN inputs are left out: the Python two-pass kernel gives NaN there (activations._ReLU);
    # tests/test_native.py checks the compiled operator at NaN.
    x, upstream = hard_inputs(dtype)
    got = gradient(activations.build("relu", zero_grad), x, upstream)
    want = activations._ReLU._exact(x, upstream, zero_grad)
    assert torch.equal(bits(got), bits(want))


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_grad_zero_is_torch_relu_bit_for_bit(dtype):
    x, upstream = hard_inputs(dtype)
    nan_x = torch.full((3,), float("nan"), dtype=dtype)
    x, upstream = torch.cat([x, nan_x]), torch.cat([upstream, torch.ones(3, dtype=dtype)])
    ours = gradient(activations.build("relu", 0.0), x, upstream)
    theirs = gradient(torch.nn.ReLU(), x, upstream)
    assert torch.equal(bits(ours), bits(theirs))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero_grad", [1.0, 0.5])
def test_forward_is_torch_relu_bit_for_bit(dtype, zero_grad, implementation):
    x, _ = hard_inputs(dtype)
    x = torch.cat([x, torch.full((3,), float("nan"), dtype=dtype)])
    ours = activations.build("relu", zero_grad)(x)
    assert torch.equal(bits(ours), bits(torch.relu(x)))


def test_zero_grad_one_passes_the_gradient_at_nan_as_torch_relu_does():
    x = torch.full((64,), float("nan"))
    upstream = torch.arange(64.0)
    assert torch.equal(gradient(activations.build("relu", 1.0), x, upstream), upstream)


def test_flushed_subnormals_fall_back_to_the_exact_backward(implementation):
    x = torch.tensor([0.0, -0.0, -1.0, 1.0, -1e-45] * 20)
    upstream = torch.arange(100.0) + 1
    expected = activations._ReLU._exact(x, upstream, 0.5)
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    try:
        flushed = gradient(activations.build("relu", 0.5), x, upstream)
        flushed_one = gradient(activations.build("relu", 1.0), x, upstream)
    finally:
        torch.set_flush_denormal(False)
    # With subnormals flushed, -1e-45 reads as -0: a zero, whose gradient is zero_grad * g.
    assert torch.equal(flushed[:4], expected[:4])
    assert torch.equal(flushed_one[:4], upstream[:4] * torch.tensor([1.0, 1.0, 0.0, 1.0]))


def without_zeros(x, upstream):
    """``hard_inputs`` less its exact zeros, plus NaN inputs (PyTorch's own backward there)."""
    keep = x != 0
    nan = torch.full((3,), float("nan"), dtype=x.dtype)
    return torch.cat([x[keep], nan]), torch.cat([upstream[keep], torch.ones(3, dtype=x.dtype)])


def backward_name(module, x):
    """The name of the autograd node ``module`` puts on its output (which path it took)."""
    return type(module(x.clone().requires_grad_(True)).grad_fn).__name__


@pytest.mark.parametrize("dtype", DTYPES)
def test_holds_zero_sees_either_signed_zero_and_nothing_else(dtype):
    x, _ = hard_inputs(dtype)
    x = x[x != 0]
    assert not activations._holds_zero(x)
    for zero in (0.0, -0.0):
        planted = x.clone()
        planted[7] = zero
        assert activations._holds_zero(planted)
        # Views with strides are read in place.
        assert activations._holds_zero(planted.view(-1, 2)[:, 1]) == (7 % 2 == 1)
        assert activations._holds_zero(planted.view(-1, 2)[:, 0]) == (7 % 2 == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero_grad", [0.5, 2.0, -0.5])
def test_relu_without_exact_zeros_is_torch_relu_and_the_definition(
    dtype, zero_grad, python_implementation
):
    x, upstream = without_zeros(*hard_inputs(dtype))
    module = activations.build("relu", zero_grad)
    assert backward_name(module, x) == "ReluBackward0"
    got = gradient(module, x, upstream)
    want = activations._ReLU._exact(x, upstream, zero_grad)
    assert torch.equal(bits(got), bits(want))
    assert torch.equal(bits(got), bits(gradient(torch.nn.ReLU(), x, upstream)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero", [0.0, -0.0])
def test_relu_with_one_exact_zero_takes_the_zero_gradient_path(dtype, zero, python_implementation):
    x, upstream = without_zeros(*hard_inputs(dtype))
    x = x[:-3]  # no NaN: the two-pass kernel gives NaN there
    upstream = upstream[:-3]
    x[100] = zero
    module = activations.build("relu", 0.5)
    assert backward_name(module, x) == "_ReLUBackward"
    got = gradient(module, x, upstream)
    assert torch.equal(bits(got), bits(activations._ReLU._exact(x, upstream, 0.5)))
    assert got[100] == 0.5 * upstream[100] != 0


def test_relu_without_gradient_is_torch_relu(implementation):
    x = torch.tensor([0.0, -0.0, -1.0, 2.0], requires_grad=True)
    with torch.no_grad():
        out = activations.build("relu", 0.5)(x)
    assert out.grad_fn is None
    assert torch.equal(bits(out), bits(torch.relu(x.detach())))


def test_flushed_subnormals_take_the_exact_path_without_exact_zeros(python_implementation):
    # No exact zero, but flushed, -1e-45 reads as 0 to the kernels: the check must not be used.
    x = torch.tensor([-1e-45, -1.0, 1.0] * 10)
    upstream = torch.arange(30.0) + 1
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals")
    try:
        name = backward_name(activations.build("relu", 0.5), x)
        flushed = gradient(activations.build("relu", 0.5), x, upstream)
    finally:
        torch.set_flush_denormal(False)
    assert name == "_ReLUBackward"
    assert torch.equal(flushed[:3], upstream[:3] * torch.tensor([0.5, 0.0, 1.0]))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_relu_on_the_gpu_keeps_the_branch_free_path():
    x, upstream = without_zeros(*hard_inputs(torch.float32))
    x, upstream = x[:-3].cuda(), upstream[:-3].cuda()
    module = activations.build("relu", 0.5)
    assert backward_name(module, x) == "_ReLUBackward"
    got = gradient(module, x, upstream)
    # The GPU's kernels may rewrite the payload of a NaN upstream gradient.
    assert same_bits_or_both_nan(got, activations._ReLU._exact(x, upstream, 0.5))


def other_kinked(name, zero_grad, dtype):
    module = activations.build(name, zero_grad).to(dtype)
    if name == "rrelu":
        module.generators = [torch.Generator().manual_seed(5)]
    return module


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["leaky_relu", "prelu", "rrelu"])
def test_other_kinked_without_exact_zeros_use_pytorchs_backward(name, dtype, python_implementation):
    """Without an exact zero PyTorch's own op and backward run, with one the Function does; the
    native gradient is bitwise the Function's (called here directly on the same input)."""
    x, upstream = without_zeros(*hard_inputs(dtype))
    x, upstream = x[:-3], upstream[:-3]
    native = {"leaky_relu": "LeakyReluBackward0", "prelu": "PreluKernelBackward0"}
    native["rrelu"] = "MulBackward0"
    function = {"leaky_relu": "_LeakyReLUBackward", "prelu": "_PReLUBackward"}
    function["rrelu"] = "_NoisyReLUBackward"
    assert backward_name(other_kinked(name, 0.5, dtype), x) == native[name]
    got = gradient(other_kinked(name, 0.5, dtype), x, upstream)
    with torch.no_grad():
        planted = x.clone()
        planted[0] = 0.0
    assert backward_name(other_kinked(name, 0.5, dtype), planted) == function[name]
    # The Function's backward on the same input, called directly.
    module = other_kinked(name, 0.5, dtype)
    xg = x.clone().requires_grad_(True)
    if name == "leaky_relu":
        out = activations._LeakyReLU.apply(xg, module.negative_slope, 0.5)
    elif name == "prelu":
        out = activations._PReLU.apply(xg, module._broadcast_weight(xg), 0.5)
    else:
        out = activations._NoisyReLU.apply(xg, module._noise(xg), 0.5)
    (want,) = torch.autograd.grad(out, xg, upstream)
    # NaNs from a NaN upstream gradient may differ in sign bit between kernels (bfloat16 PReLU).
    assert same_bits_or_both_nan(got, want)
