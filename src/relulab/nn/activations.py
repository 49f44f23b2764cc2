"""Activation functions, with a chosen derivative at the kink.

``build(name, zero_grad=a)`` returns a module whose forward pass is PyTorch's own op and whose
backward pass equals PyTorch's everywhere except at inputs exactly equal to 0, where it returns
``a * upstream_gradient`` (the chain rule with f'(0) := a), never the constant ``a``.
``zero_grad=None`` returns PyTorch's own module, with PyTorch's own convention at 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from relulab.nn import native
from relulab.nn.kinds import ACTIVATIONS, KINKED, SMOOTH, is_kinked  # noqa: F401 - re-exported

# The value PyTorch's own autograd uses for f'(0), for the record (docs/definitions.rst).
TORCH_ZERO_GRAD = {"relu": 0.0, "elu": 1.0, "softplus": 0.5, "gelu": 0.5}


def _at_zero(x: torch.Tensor, grad: torch.Tensor, zero_grad: float, elsewhere: torch.Tensor):
    """``zero_grad * grad`` where ``x == 0``, ``elsewhere`` otherwise."""
    return torch.where(x == 0, grad * zero_grad, elsewhere)


# The negative number closest to 0 in each floating dtype (minus the smallest subnormal), so that
# ``x <= below_zero`` is exactly ``x < 0`` and PyTorch's one-pass ``threshold`` and
# ``threshold_backward`` can tell 0 from the negatives. Comparisons against it hold only while
# the CPU keeps subnormals, which is PyTorch's default; ``torch.set_flush_denormal(True)``
# flushes them, ``_subnormals_kept`` notices that (Python floats are flushed the same way), and
# the slower exact path is taken.
_BELOW_ZERO = {
    dtype: -torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16)
}
_SUBNORMAL = 5e-324
_THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.default
_THRESHOLD_BACKWARD_INTO = torch.ops.aten.threshold_backward.grad_input
_ELU_BACKWARD = torch.ops.aten.elu_backward.default
_PRELU_KERNEL = torch.ops.aten._prelu_kernel.default


def _subnormals_kept() -> bool:
    return _SUBNORMAL > 0.0


# Each floating dtype's bits as the signed integer type of its width, the unsigned NumPy type of
# that width, and the signed type's minimum: the bits of +0.0 are all clear (the unsigned
# minimum, 0) and those of -0.0 are the sign bit alone (the signed minimum). No other value of
# the dtype, subnormals, infinities and NaNs included, has either pattern.
_ZERO_BITS = {
    dtype: (signed, unsigned, torch.iinfo(signed).min)
    for dtype, signed, unsigned in (
        (torch.float64, torch.int64, np.uint64),
        (torch.float32, torch.int32, np.uint32),
        (torch.float16, torch.int16, np.uint16),
        (torch.bfloat16, torch.int16, np.uint16),
    )
}


_MIN = np.minimum.reduce
# Inputs larger than this are scanned for exact zeros only when PyTorch runs on one thread, as
# relulab's training jobs and cost benchmark do.
_SCAN_ALONE_UP_TO = 1 << 16


def _holds_zero(x: torch.Tensor) -> bool:
    """Whether the CPU tensor ``x`` holds an exact zero (+0.0 or -0.0), read from its bits.

    Two read-only minimum reductions over NumPy views of ``x``'s memory (vectorised, no copy):
    the unsigned minimum is 0 exactly when +0.0 is present, the signed minimum is the sign bit
    alone exactly when -0.0 is. Integer comparisons, so flushed subnormals do not enter.
    """
    signed, unsigned, negative_zero = _ZERO_BITS[x.dtype]
    bits = x.detach().view(signed).numpy()
    # ``np.minimum.reduce`` rather than ``.min()``: the same kernel, less Python per call.
    return bool(_MIN(bits.view(unsigned), None) == 0 or _MIN(bits, None) == negative_zero)


def _compiled(x: torch.Tensor) -> native.Operators | None:
    """relulab's compiled operators for a CPU tensor; None elsewhere or where none were built."""
    return native.operators() if x.is_cpu else None


def _own_backward_is_exact(x: torch.Tensor) -> bool:
    """Whether PyTorch's own backward pass of a kinked activation is the zero-gradient one at x.

    The two differ only at inputs exactly equal to 0, so they agree on a tensor without an exact
    zero, and the call can use PyTorch's own op and its one-pass native backward. This checks the
    input on the CPU, where reading the answer back stalls nothing: an extra read of ``x`` costs
    less than an extra backward pass plus the overhead of a Python ``autograd.Function``. On
    other devices the check would wait for the device once per call, so it is not made there
    (False). Nor is it made when subnormals are flushed (``torch.set_flush_denormal(True)``):
    the float comparisons of every kernel then read a subnormal as 0, so the exact path's
    ``x == 0`` holds where this bitwise check sees no zero. Calls that take no gradient need no
    check: their forward is PyTorch's op on every path.
    """
    if not (x.requires_grad and torch.is_grad_enabled()):
        return True
    if x.device.type != "cpu" or x.dtype not in _ZERO_BITS or not _subnormals_kept():
        return False
    if x.numel() > _SCAN_ALONE_UP_TO and torch.get_num_threads() > 1:
        # The scan runs on one thread; on a large input PyTorch's kernels on several threads
        # finish the exact two passes before it would (measured: 1M elements, 2 threads).
        return False
    return x.numel() == 0 or not _holds_zero(x)


# The zero-gradient ReLU's backward as one CUDA kernel (compiled at its first use by PyTorch's
# jiterator): one pass over the gradient and the input, as PyTorch's own ReLU backward, where
# the two passes below cost 1.5 to 1.7 times it on an H100. ``grad * zero_grad`` is computed in
# the tensor's type; PyTorch's ``grad * zero_grad`` computes in float for float16 and bfloat16,
# which is the same product (exact in float, rounded once) whenever zero_grad is a value of
# that type, so the kernel is used only then (``_fused_cuda_is_exact``).
_CUDA_BACKWARD = """
template <typename T> T zero_grad_relu_backward(T grad, T x, T zero_grad) {
    return x > T(0) ? grad : (x == T(0) ? grad * zero_grad : T(0));
}
"""


@functools.cache
def _cuda_backward():
    return torch.cuda.jiterator._create_jit_fn(_CUDA_BACKWARD, zero_grad=0.0)


@functools.cache
def _fused_cuda_is_exact(dtype: torch.dtype, zero_grad: float) -> bool:
    if dtype in (torch.float32, torch.float64):
        return True  # PyTorch's product is computed in the tensor's type too
    if dtype not in _BELOW_ZERO:
        return False
    as_float = torch.tensor(zero_grad, dtype=torch.float32)
    return bool(torch.tensor(zero_grad, dtype=dtype).float() == as_float)


class _ReLU(torch.autograd.Function):
    """ReLU with f'(0) := zero_grad, for the values ``ZeroGradReLU`` has no native op for.

    On the CPU it runs only where the compiled operator is unavailable, and then only for
    inputs holding an exact zero (``_own_backward_is_exact``); on the GPU it runs for every
    call, with no branch on the data, and its backward is one fused kernel (``_cuda_backward``).

    The backward pass is ``where(x == 0, zero_grad * grad, threshold_backward(grad, x, 0))``
    (``_exact``), computed in two passes of PyTorch's own vectorised kernels, because boolean
    masks and ``where`` cost several times a ReLU on the CPU: ``elu_backward`` in its result
    form computes ``grad * (x + a)`` for x <= 0 (``grad * a`` exactly at x == 0) and ``grad``
    for x > 0; ``threshold_backward`` at the negative number closest to 0 then zeroes x < 0.
    This is bitwise ``_exact`` (tests/test_cost.py checks every dtype, signed zeros, subnormals
    and infinities) except at a NaN input, where the gradient is NaN while PyTorch passes the
    upstream gradient through: a NaN pre-activation means the run has already diverged (its
    loss is NaN and so are its gradients). ``_exact`` itself runs where the kernels cannot be
    used: negative zero_grad, other dtypes, or subnormals flushed by
    ``torch.set_flush_denormal(True)``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, zero_grad: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.zero_grad = zero_grad
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        zero_grad = ctx.zero_grad
        if x.is_cuda and _fused_cuda_is_exact(x.dtype, zero_grad):
            return _cuda_backward()(grad, x, zero_grad=zero_grad), None
        below_zero = _BELOW_ZERO.get(x.dtype)
        if below_zero is None or zero_grad < 0 or not _subnormals_kept():
            return _ReLU._exact(x, grad, zero_grad), None
        scaled = _ELU_BACKWARD(grad, zero_grad, 1, 1, True, x)
        # In place: the second pass writes over the first one's buffer.
        _THRESHOLD_BACKWARD_INTO(scaled, x, below_zero, grad_input=scaled)
        return scaled, None

    @staticmethod
    def _exact(x: torch.Tensor, grad: torch.Tensor, zero_grad: float) -> torch.Tensor:
        positive = _THRESHOLD_BACKWARD(grad, x, 0)
        return _at_zero(x, grad, zero_grad, positive)


class _LeakyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float, zero_grad: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.slope, ctx.zero_grad = slope, zero_grad
        return F.leaky_relu(x, slope)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        own = torch.ops.aten.leaky_relu_backward(grad, x, ctx.slope, False)
        return _at_zero(x, grad, ctx.zero_grad, own), None, None


class _PReLU(torch.autograd.Function):
    """PReLU with a weight already shaped to broadcast against the input."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, zero_grad: float) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.zero_grad = zero_grad
        return torch.where(x > 0, x, weight * x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        own = torch.where(x > 0, grad, weight * grad)
        grad_x = _at_zero(x, grad, ctx.zero_grad, own)
        grad_weight = torch.where(x > 0, 0, x * grad).sum_to_size(weight.shape)
        return grad_x, grad_weight, None


class _NoisyReLU(torch.autograd.Function):
    """RReLU in training: ``x * noise`` for x <= 0 with a given noise tensor."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, noise: torch.Tensor, zero_grad: float) -> torch.Tensor:
        slope = torch.where(x > 0, 1, noise).to(x.dtype)
        ctx.save_for_backward(x, slope)
        ctx.zero_grad = zero_grad
        return x * slope

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, slope = ctx.saved_tensors
        own = grad * slope
        return _at_zero(x, grad, ctx.zero_grad, own), None, None


class ZeroGradReLU(nn.Module):
    """ReLU with f'(0) := zero_grad; its forward pass is ``torch.relu`` bit for bit.

    f'(0) = 0 is PyTorch's own ReLU and f'(0) = 1 one native ``threshold``. Other values run,
    on the CPU, relulab's compiled operator (``relulab.nn.native``: one-pass backward kernel) or,
    where it cannot be built, PyTorch's own ReLU for inputs without an exact zero and ``_ReLU``
    for the others; on a GPU, ``_ReLU`` with its fused kernel. All give the same gradients.
    ``compiled=False`` keeps the Python implementation on the CPU too (benchmarks compare them).
    """

    def __init__(self, zero_grad: float, compiled: bool = True):
        super().__init__()
        self.zero_grad = float(zero_grad)
        self.compiled = compiled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.zero_grad == 0.0:
            # PyTorch's own ReLU already uses f'(0) = 0; its backward is the reference.
            return torch.relu(x)
        if self.zero_grad == 1.0:
            below_zero = _BELOW_ZERO.get(x.dtype)
            if below_zero is not None and _subnormals_kept():
                # x <= below_zero is x < 0: the forward is torch.relu's bit for bit (-0.0
                # included) and PyTorch's own backward passes the gradient for x >= 0.
                return F.threshold(x, below_zero, 0.0)
        if self.compiled and (compiled := _compiled(x)) is not None:
            # torch.relu's forward; the definition's backward in one vectorised pass.
            return compiled.relu(x, self.zero_grad)
        if _own_backward_is_exact(x):
            # No exact zero in x (usual in float32): PyTorch's own ReLU, forward and backward,
            # is bit for bit the zero-gradient one, which differs from it only at x == 0.
            return torch.relu(x)
        return _ReLU.apply(x, self.zero_grad)

    def extra_repr(self) -> str:
        return f"zero_grad={self.zero_grad}"


def _zero_grad_leaky_relu(
    x: torch.Tensor, slope: float, zero_grad: float, compiled: bool = True
) -> torch.Tensor:
    """Leaky ReLU with f'(0) := zero_grad: the compiled operator on the CPU where it was built
    (unless ``compiled`` is False), else PyTorch's own op for inputs without an exact zero and
    ``_LeakyReLU`` for the others."""
    if compiled and (operators := _compiled(x)) is not None:
        return operators.leaky_relu(x, slope, zero_grad)
    if _own_backward_is_exact(x):
        return F.leaky_relu(x, slope)
    return _LeakyReLU.apply(x, slope, zero_grad)


class ZeroGradLeakyReLU(nn.Module):
    """Leaky ReLU with f'(0) := zero_grad (PyTorch's own uses the negative slope there).

    On the CPU it runs relulab's compiled operator where it could be built, as ZeroGradReLU
    does; otherwise PyTorch's own op for inputs without an exact zero and ``_LeakyReLU`` for
    the others. ``compiled=False`` keeps the Python implementation.
    """

    def __init__(self, zero_grad: float, negative_slope: float = 0.01, compiled: bool = True):
        super().__init__()
        self.zero_grad = float(zero_grad)
        self.negative_slope = float(negative_slope)
        self.compiled = compiled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _zero_grad_leaky_relu(x, self.negative_slope, self.zero_grad, self.compiled)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}, zero_grad={self.zero_grad}"


class ZeroGradPReLU(nn.Module):
    """PReLU whose weight is broadcast over dimension ``channel_dim`` of the input.

    ``num_parameters=1`` shares one slope over all units, as ``nn.PReLU()`` does. For inputs
    stacked over seeds (``[seeds, batch, units]``) give ``seeds`` to keep one slope per seed.
    """

    def __init__(
        self,
        zero_grad: float | None,
        num_parameters: int = 1,
        init: float = 0.25,
        seeds: int | None = None,
    ):
        super().__init__()
        self.zero_grad = None if zero_grad is None else float(zero_grad)
        self.seeds = seeds
        shape = (num_parameters,) if seeds is None else (seeds, num_parameters)
        self.weight = nn.Parameter(torch.full(shape, float(init)))

    def _broadcast_weight(self, x: torch.Tensor) -> torch.Tensor:
        if self.seeds is None:
            channels = self.weight.shape[0]
            if channels == 1 or x.dim() < 2:
                return self.weight.view([1] * max(x.dim(), 1))
            return self.weight.view([1, channels] + [1] * (x.dim() - 2))
        channels = self.weight.shape[1]
        if channels == 1 or x.dim() < 3:
            return self.weight.view([self.seeds] + [1] * (x.dim() - 1))
        return self.weight.view([self.seeds, 1, channels] + [1] * (x.dim() - 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self._broadcast_weight(x)
        if self.zero_grad is None:
            return torch.where(x > 0, x, weight * x)
        if _own_backward_is_exact(x):
            # The kernel of PyTorch's own PReLU, with a weight that broadcasts: its backward is
            # ``_PReLU``'s away from 0, the slope's gradient summed back to the weight's shape.
            return _PRELU_KERNEL(x, weight)
        return _PReLU.apply(x, weight, self.zero_grad)

    def extra_repr(self) -> str:
        return f"num_parameters={self.weight.shape[-1]}, zero_grad={self.zero_grad}"


class ZeroGradRReLU(nn.Module):
    """Randomised leaky ReLU (Xu et al. 2015) with its own noise generator.

    In training a unit with x <= 0 gets a slope drawn uniformly from [lower, upper] per element,
    as ``F.rrelu`` does; in evaluation the slope is ``(lower + upper) / 2``. The noise comes from
    ``generators`` (one per seed for inputs stacked over seeds) so that a run is reproducible
    and does not depend on the global random state.
    """

    def __init__(
        self,
        zero_grad: float | None,
        lower: float = 1.0 / 8,
        upper: float = 1.0 / 3,
        generators: list[torch.Generator] | None = None,
    ):
        super().__init__()
        self.zero_grad = None if zero_grad is None else float(zero_grad)
        self.lower, self.upper = float(lower), float(upper)
        self.generators = generators

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        if self.generators is None:
            noise = torch.rand(x.shape, dtype=x.dtype, device=x.device)
        elif len(self.generators) == 1:
            noise = torch.rand(
                x.shape, generator=self.generators[0], dtype=x.dtype, device=x.device
            )
        else:
            noise = torch.stack(
                [
                    torch.rand(x.shape[1:], generator=g, dtype=x.dtype, device=x.device)
                    for g in self.generators
                ]
            )
        return noise * (self.upper - self.lower) + self.lower

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            noise = self._noise(x)
            if self.zero_grad is None or _own_backward_is_exact(x):
                # Autograd's own product rule gives ``grad * slope``, ``_NoisyReLU``'s backward.
                return x * torch.where(x > 0, 1, noise).to(x.dtype)
            return _NoisyReLU.apply(x, noise, self.zero_grad)
        slope = (self.lower + self.upper) / 2
        if self.zero_grad is None:
            return F.leaky_relu(x, slope)
        return _zero_grad_leaky_relu(x, slope, self.zero_grad)

    def extra_repr(self) -> str:
        return f"lower={self.lower}, upper={self.upper}, zero_grad={self.zero_grad}"


_SMOOTH_MODULES: dict[str, Callable[..., nn.Module]] = {
    "elu": nn.ELU,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def check_zero_grad(name: str, zero_grad: float | None) -> None:
    """Raise ``ValueError`` unless ``zero_grad`` is allowed for the activation ``name``."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")
    if zero_grad is None:
        return
    if name not in KINKED:
        raise ValueError(
            f"zero_grad applies only to the kinked activations ({', '.join(KINKED)}); "
            f"{name!r} is smooth at 0, so its zero_grad must be None"
        )
    if isinstance(zero_grad, bool) or not isinstance(zero_grad, (int, float)):
        raise ValueError(f"zero_grad must be a finite number or None, not {zero_grad!r}")
    if not math.isfinite(zero_grad):
        raise ValueError(f"zero_grad must be a finite number or None, not {zero_grad!r}")


def build(
    name: str,
    zero_grad: float | None = None,
    seeds: int | None = None,
    generators: list[torch.Generator] | None = None,
    **kwargs,
) -> nn.Module:
    """The activation ``name`` as a module, with f'(0) := ``zero_grad`` for kinked ones.

    ``seeds`` (PReLU only) keeps one learnable slope per seed for inputs stacked over seeds;
    ``generators`` (RReLU only) are the noise generators, one per seed.
    """
    check_zero_grad(name, zero_grad)
    if name == "prelu":
        return ZeroGradPReLU(zero_grad, seeds=seeds, **kwargs)
    if name == "rrelu":
        return ZeroGradRReLU(zero_grad, generators=generators, **kwargs)
    if name in _SMOOTH_MODULES:
        return _SMOOTH_MODULES[name](**kwargs)
    if zero_grad is None:
        return nn.ReLU(**kwargs) if name == "relu" else nn.LeakyReLU(**kwargs)
    if name == "relu":
        return ZeroGradReLU(zero_grad)
    return ZeroGradLeakyReLU(zero_grad, **kwargs)


ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    ZeroGradReLU,
    ZeroGradLeakyReLU,
    ZeroGradPReLU,
    ZeroGradRReLU,
    nn.ReLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    *_SMOOTH_MODULES.values(),
)


def is_activation(module: nn.Module) -> bool:
    return isinstance(module, ACTIVATION_TYPES)
