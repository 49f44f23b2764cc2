"""Inputs and comparisons for the zero-gradient operator's exactness tests.

Bitwise comparisons (``bits``), the awkward inputs where implementations part (signed zeros,
subnormals, infinities, NaN upstream gradients) and one backward pass of a module.
"""

import torch

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


def same_bits_or_both_nan(got, want):
    """Bitwise equal, except that two NaNs match whatever their sign and payload bits."""
    both_nan = got.isnan() & want.isnan()
    return torch.equal(got.isnan(), want.isnan()) and torch.equal(
        bits(got)[~both_nan], bits(want)[~both_nan]
    )


def backward(module, x, upstream):
    x = x.clone().requires_grad_(True)
    out = module(x)
    out.backward(upstream)
    return out.detach(), x.grad
