"""The cost benchmark's table, and the fast zero-gradient ReLU being exactly the slow one.

The benchmark's numbers depend on the machine; these tests check what it reports and that
the backward kernels relulab uses for speed (the compiled operator, and the Python
implementation's one- and two-pass kernels) compute, bit for bit, the definition
``where(x == 0, zero_grad * grad, PyTorch's ReLU backward)``.
"""

import math

import pandas as pd
import pytest
import torch

from relulab.experiments import cost
from relulab.nn import activations, native

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
INTEGER = {torch.float64: torch.int64, torch.float32: torch.int32}


def bits(tensor):
    return tensor.view(INTEGER.get(tensor.dtype, torch.int16))


def hard_inputs(dtype):
    """Every pairing of awkward inputs and upstream gradients, then random ones with zeros."""
    info = torch.finfo(dtype)
    subnormal = info.smallest_normal * info.eps
    specials = [0.0, -0.0, 1.0, -1.0, float("inf"), float("-inf"), subnormal, -subnormal]
    specials += [info.smallest_normal, -info.smallest_normal, info.max, -info.max]
    upstream = [0.0, -0.0, 2.5, -3.0, float("inf"), float("-inf"), float("nan"), subnormal]
    x = torch.tensor(specials, dtype=torch.float64).repeat_interleave(len(upstream))
    g = torch.tensor(upstream, dtype=torch.float64).repeat(len(specials))
    generator = torch.Generator().manual_seed(0)
    random_x = torch.randn(4096, generator=generator, dtype=torch.float64)
    random_x[::5] = 0.0
    random_x[1::10] = -0.0
    random_g = torch.randn(4096, generator=generator, dtype=torch.float64)
    return torch.cat([x, random_x]).to(dtype), torch.cat([g, random_g]).to(dtype)


def gradient(module, x, upstream):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(module(x), x, upstream)
    return grad


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


def test_variants_cover_every_activation_and_the_zero_grad_values_next_to_torch():
    labels = [v.label for v in cost.variants((0.0, 0.5, 1.0))]
    assert labels[0] == cost.REFERENCE == "torch.relu"
    for name in activations.KINKED:
        assert f"torch.{name}" in labels
        for z in ("0", "0.5", "1"):
            assert f"{name} (f'(0)={z})" in labels
    for name in activations.SMOOTH:
        assert name in labels
    assert len(labels) == len(set(labels))


def test_benchmark_reports_medians_per_element_and_relative_to_torch_relu():
    table = cost.benchmark(sizes=[256, 1024], repeats=3, devices=["cpu"], zero_grads=(0.5,))
    variants = cost.variants((0.5,))
    assert len(table) == 2 * len(variants)
    assert set(table["elements"]) == {256, 1024}
    assert (table["repeats"] == 3).all()
    assert (table["median_s"] > 0).all()
    assert (table["q25_s"] <= table["median_s"]).all()
    assert (table["median_s"] <= table["q75_s"]).all()
    per_element = table["median_s"] / table["elements"] * 1e9
    assert table["ns_per_element"].tolist() == pytest.approx(per_element.tolist())
    reference = table[table["variant"] == cost.REFERENCE]
    assert reference["relative"].tolist() == pytest.approx([1.0, 1.0])
    ours = cost.zero_grad_relu_overhead(table)
    assert set(ours["variant"]) == {"relu (f'(0)=0.5)"}
    assert len(ours) == 2
    compiled = native.operators() is not None
    assert ours["compiled_operator"].tolist() == [compiled, compiled]
    timed_compiled = set(table.loc[table["compiled_operator"], "variant"])
    assert timed_compiled == ({"relu (f'(0)=0.5)", "leaky_relu (f'(0)=0.5)"} if compiled else set())


def test_timing_sees_every_module_once_per_repeat():
    calls = {"a": 0, "b": 0}

    class Counting(torch.nn.Module):
        def __init__(self, key):
            super().__init__()
            self.key = key

        def forward(self, x):
            calls[self.key] += 1
            return torch.relu(x)

    times, ratios = cost.time_variants(
        {"a": Counting("a"), "b": Counting("b")}, "a", elements=64, repeats=4, warmup=1
    )
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4}
    assert {k: len(v) for k, v in ratios.items()} == {"a": 4, "b": 4}
    # Each repeat (warm-up included) runs each module twice (once untimed, once timed), and
    # the reference "a" twice more before each of the two modules.
    assert calls == {"a": 5 * (2 + 2 * 2), "b": 5 * 2}


def without_zeros(x, upstream):
    """``hard_inputs`` less its exact zeros, plus NaN inputs (PyTorch's own backward there)."""
    keep = x != 0
    nan = torch.full((3,), float("nan"), dtype=x.dtype)
    return torch.cat([x[keep], nan]), torch.cat([upstream[keep], torch.ones(3, dtype=x.dtype)])


def backward_name(module, x):
    """The name of the autograd node ``module`` puts on its output (which path it took)."""
    return type(module(x.clone().requires_grad_(True)).grad_fn).__name__


def same_bits_or_both_nan(got, want):
    """Bitwise equal, except that two NaNs match whatever their sign and payload bits."""
    both_nan = got.isnan() & want.isnan()
    return torch.equal(got.isnan(), want.isnan()) and torch.equal(
        bits(got)[~both_nan], bits(want)[~both_nan]
    )


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


def test_torch_relu_is_timed_against_a_second_copy_of_itself_as_the_null():
    labels = [v.label for v in cost.variants((0.0,))]
    assert cost.NULL in labels
    null = next(v for v in cost.variants((0.0,)) if v.label == cost.NULL)
    assert isinstance(null.build(), torch.nn.ReLU)


def test_median_interval_takes_order_statistics_at_binomial_ranks():
    values = list(range(1, 21))  # n = 20: the 6th to the 15th smallest
    assert cost.median_interval(values) == (6.0, 15.0)
    assert all(math.isnan(v) for v in cost.median_interval([1.0]))


def cost_row(variant, relative, low, high):
    return {
        "device": "cpu",
        "elements": 100,
        "variant": variant,
        "relative": relative,
        "relative_low": low,
        "relative_high": high,
    }


def test_cheaper_and_dearer_only_outside_the_null():
    table = pd.DataFrame(
        [
            cost_row(cost.REFERENCE, 1.0, 0.97, 1.03),
            cost_row(cost.NULL, 0.9, 0.85, 0.98),
            cost_row("inside", 0.95, 0.9, 0.97),  # cheaper than 1, not than the null
            cost_row("cheap", 0.5, 0.45, 0.55),
            cost_row("dear", 2.0, 1.8, 2.2),
            cost_row("one repeat", 0.5, math.nan, math.nan),
        ]
    )
    verdicts = cost.add_verdicts(table).set_index("variant")["verdict"]
    assert verdicts.to_dict() == {
        cost.REFERENCE: "reference",
        cost.NULL: "null",
        "inside": "within noise",
        "cheap": "cheaper",
        "dear": "dearer",
        "one repeat": "within noise",
    }
