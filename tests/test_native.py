"""relulab's compiled operators: the definitions bit for bit, in every case they meet.

ReLU: ``where(x == 0, grad * zero_grad, threshold_backward(grad, x, 0))``
(``activations._ReLU._exact``), PyTorch's ReLU backward (which passes the gradient at a NaN
input) except at +0.0 and -0.0; Leaky ReLU: the same with ``leaky_relu_backward``. Without a
C++ compiler these tests are skipped, except in CI.
"""

import os
import subprocess
import sys
import warnings

import pytest
import torch
from helpers.ci import compiled_operators_or_skip
from helpers.gradients import DTYPES, bits, gradient, hard_inputs, same_bits_or_both_nan

from relulab.nn import activations, native


@pytest.fixture
def operators():
    return compiled_operators_or_skip()


@pytest.fixture
def operator(operators):
    return operators.relu


def leaky_definition(x, upstream, slope, zero_grad):
    own = torch.ops.aten.leaky_relu_backward(upstream, x, slope, False)
    return activations._at_zero(x, upstream, zero_grad, own)


def with_nan_inputs(x, upstream):
    nan = torch.full((5,), float("nan"), dtype=x.dtype)
    return torch.cat([x, nan]), torch.cat([upstream, torch.arange(5.0).to(x.dtype) - 2])


def test_zero_grad_activations_use_the_operators_on_the_cpu(operators):
    x = torch.randn(10, requires_grad=True)
    out = activations.build("relu", 0.5)(x)
    assert out.grad_fn.name().endswith("relulab::ReluZeroGrad>")
    for zero_grad in (0.0, 0.5, 1.0):
        leaky = activations.build("leaky_relu", zero_grad)(x)
        assert leaky.grad_fn.name().endswith("relulab::LeakyReluZeroGrad>")
    rrelu = activations.build("rrelu", 0.5).eval()(x)
    assert rrelu.grad_fn.name().endswith("relulab::LeakyReluZeroGrad>")
    # f'(0) = 0 and 1 keep PyTorch's own one-pass ops.
    assert activations.build("relu", 0.0)(x).grad_fn.name() == "ReluBackward0"
    assert activations.build("relu", 1.0)(x).grad_fn.name() == "ThresholdBackward0"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zero_grad", [0.5, 0.3, 2.0, 1e-3, -0.5, 1.0, 0.0])
def test_backward_is_bitwise_the_definition_nan_inputs_included(operator, dtype, zero_grad):
    x, upstream = with_nan_inputs(*hard_inputs(dtype))
    got = gradient(lambda t: operator(t, zero_grad), x, upstream)
    want = activations._ReLU._exact(x, upstream, zero_grad)
    # Bitwise, except that NaN gradients (NaN upstream times zero_grad) may differ in payload.
    assert same_bits_or_both_nan(got, want)
    assert torch.equal(got[-5:], upstream[-5:]), "a NaN input passes the gradient, as PyTorch's"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slope", [0.01, 0.25, 0.0, -0.5])
@pytest.mark.parametrize("zero_grad", [0.5, 0.3, 0.0, 1.0, -2.0])
def test_leaky_backward_is_bitwise_the_definition_nan_inputs_included(
    operators, dtype, slope, zero_grad
):
    x, upstream = with_nan_inputs(*hard_inputs(dtype))
    got = gradient(lambda t: operators.leaky_relu(t, slope, zero_grad), x, upstream)
    want = leaky_definition(x, upstream, slope, zero_grad)
    assert same_bits_or_both_nan(got, want)
    nan_x = slice(-5, None)  # PyTorch's leaky_relu_backward: a NaN input gets grad * slope
    assert same_bits_or_both_nan(got[nan_x], upstream[nan_x] * slope)


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_is_pytorchs_bit_for_bit(operators, dtype):
    x, _ = with_nan_inputs(*hard_inputs(dtype))
    assert torch.equal(bits(operators.relu(x, 0.5)), bits(torch.relu(x)))
    leaky = operators.leaky_relu(x, 0.01, 0.5)
    assert torch.equal(bits(leaky), bits(torch.nn.functional.leaky_relu(x, 0.01)))


def test_the_loop_and_the_operator_form_agree_bit_for_bit(operator):
    """Strided and broadcast tensors take the form written with PyTorch's operators."""
    x, upstream = hard_inputs(torch.float32)
    direct = torch.ops.relulab.relu_zero_grad_backward(upstream, x, 0.3)
    strided_x = torch.stack([x, -x], dim=1)[:, 0]
    strided_upstream = torch.stack([upstream, upstream], dim=1)[:, 0]
    assert not strided_x.is_contiguous()
    through_operators = torch.ops.relulab.relu_zero_grad_backward(strided_upstream, strided_x, 0.3)
    assert torch.equal(bits(direct), bits(through_operators))
    assert torch.equal(bits(direct), bits(activations._ReLU._exact(x, upstream, 0.3)))
    broadcast = torch.ones(()).expand(x.shape)
    assert torch.equal(
        torch.ops.relulab.relu_zero_grad_backward(broadcast, x, 0.3),
        torch.where(x == 0, 0.3, (x > 0).float()),
    )
    leaky = torch.ops.relulab.leaky_relu_zero_grad_backward
    direct = leaky(upstream, x, 0.1, 0.3)
    assert torch.equal(bits(direct), bits(leaky(strided_upstream, strided_x, 0.1, 0.3)))
    assert same_bits_or_both_nan(direct, leaky_definition(x, upstream, 0.1, 0.3))


def test_matrices_and_transposed_inputs(operator):
    x, upstream = hard_inputs(torch.float64)
    x, upstream = x[:4096].view(64, 64), upstream[:4096].view(64, 64)
    for inputs, gradients in ((x, upstream), (x.t(), upstream.t()), (x.t(), upstream)):
        got = gradient(lambda t: operator(t, 0.5), inputs, gradients)
        assert same_bits_or_both_nan(got, activations._ReLU._exact(inputs, gradients, 0.5))


def test_several_threads_split_the_loop_without_changing_a_bit(operators):
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1_000_003, generator=generator)
    x[::1000] = 0.0
    x[32767:32770] = -0.0  # around a chunk boundary of the parallel loop
    upstream = torch.randn(x.shape, generator=generator)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = gradient(lambda t: operators.relu(t, 0.5), x, upstream)
        leaky = gradient(lambda t: operators.leaky_relu(t, 0.1, 0.5), x, upstream)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(bits(got), bits(activations._ReLU._exact(x, upstream, 0.5)))
    assert torch.equal(bits(leaky), bits(leaky_definition(x, upstream, 0.1, 0.5)))


def test_double_backward_differentiates_the_definition(operator):
    x = torch.tensor([0.0, -0.0, 2.0, -3.0, 0.0])
    upstream = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], requires_grad=True)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(operator(xg, 0.25), xg, upstream, create_graph=True)
    assert torch.equal(grad, torch.tensor([0.25, 0.5, 3.0, 0.0, 1.25]))
    # d(grad . v)/d upstream = f'(x) * v, with f'(0) = 0.25.
    v = torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0])
    (second,) = torch.autograd.grad(grad, upstream, v)
    assert torch.equal(second, torch.tensor([0.25, 0.25, 1.0, 0.0, 0.5]))


def test_double_backward_of_leaky_relu(operators):
    xg = torch.tensor([0.0, 2.0, -3.0], requires_grad=True)
    upstream = torch.tensor([1.0, 3.0, 4.0], requires_grad=True)
    out = operators.leaky_relu(xg, 0.5, 0.25)
    (grad,) = torch.autograd.grad(out, xg, upstream, create_graph=True)
    assert torch.equal(grad, torch.tensor([0.25, 3.0, 2.0]))
    (second,) = torch.autograd.grad(grad.sum(), upstream)
    assert torch.equal(second, torch.tensor([0.25, 1.0, 0.5]))


def test_without_gradient_the_operator_is_relu(operator):
    x, _ = hard_inputs(torch.float32)
    with torch.no_grad():
        out = activations.build("relu", 0.5)(x.clone().requires_grad_(True))
    assert out.grad_fn is None
    assert torch.equal(bits(out), bits(torch.relu(x)))


@pytest.fixture
def fresh_lookup():
    native.operators.cache_clear()
    yield
    native.operators.cache_clear()


def test_turned_off_by_the_environment_silently(monkeypatch, fresh_lookup):
    monkeypatch.setenv(native.DISABLE, "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.operators() is None
    x = torch.tensor([0.0, -1.0, 1.0], requires_grad=True)
    assert activations.build("relu", 0.5)(x).grad_fn.name() == "_ReLUBackward"
    assert activations.build("leaky_relu", 0.5)(x).grad_fn.name() == "_LeakyReLUBackward"


def test_unavailable_warns_with_the_reason_and_falls_back(monkeypatch, fresh_lookup):
    monkeypatch.delenv(native.DISABLE, raising=False)

    def no_compiler(verbose=False):
        raise native.NativeUnavailableError("RuntimeError: no C++ compiler found")

    monkeypatch.setattr(native, "build", no_compiler)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found"):
        assert native.operators() is None
    x, upstream = hard_inputs(torch.float32)
    got = gradient(activations.build("relu", 0.5), x, upstream)
    assert torch.equal(bits(got), bits(activations._ReLU._exact(x, upstream, 0.5)))


def test_command_line_builds_and_reports(operator, monkeypatch):
    ready = subprocess.run(
        [sys.executable, "-m", "relulab.nn.native"], capture_output=True, text=True, check=False
    )
    assert ready.returncode == 0, ready.stderr
    assert "ready" in ready.stdout
    monkeypatch.setenv(native.DISABLE, "0")
    off = subprocess.run(
        [sys.executable, "-m", "relulab.nn.native"], capture_output=True, text=True, check=False
    )
    assert off.returncode == 1
    assert "RELULAB_NATIVE=0" in off.stderr


WITHOUT_COMPILER = """
import warnings
import torch
from relulab.nn import activations
x = torch.tensor([0.0, -0.0, -2.0, 3.0], requires_grad=True)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = activations.build("relu", 0.5)(x)
out.backward(torch.tensor([2.0, 4.0, 8.0, 16.0]))
print(x.grad.tolist(), out.grad_fn.name())
print([str(w.message) for w in caught])
"""


def test_without_a_compiler_relulab_warns_once_and_computes_the_same(tmp_path):
    environment = {**os.environ, "CXX": str(tmp_path / "no-such-compiler")}
    environment.pop(native.DISABLE, None)
    environment["TORCH_EXTENSIONS_DIR"] = str(tmp_path / "extensions")
    reported = subprocess.run(
        [sys.executable, "-m", "relulab.nn.native"], env=environment, capture_output=True, text=True
    )
    assert reported.returncode == 1
    assert "unavailable" in reported.stderr and "no-such-compiler" in reported.stderr
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_COMPILER], env=environment, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    gradients, caught = run.stdout.splitlines()
    assert gradients == "[1.0, 2.0, 0.0, 16.0] _ReLUBackward"
    assert caught.count("compiled zero-gradient operators are unavailable") == 1


@pytest.mark.slow
def test_processes_started_together_build_once_and_all_load(operator, tmp_path):
    """Training jobs start together on a fresh machine: one builds, the others wait and load.

    A lock file left by an older PyTorch's killed build is stale under relulab's own lock and
    must not make anyone wait."""
    environment = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    directory = tmp_path / native.build_directory().name
    directory.mkdir()
    (directory / "lock").touch()
    command = [sys.executable, "-m", "relulab.nn.native"]
    jobs = [
        subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [job.communicate(timeout=300)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0, 0]
    assert all("ready" in output for output in outputs)
    assert len(list(directory.glob("*.so"))) == 1
