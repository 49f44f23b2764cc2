"""The 1-ulp control of the zero_grad twins: how far does any last-bit difference carry?

Twins that differ only in f'(0) are bitwise equal until an exact zero meets a non-zero upstream
gradient; from then on they differ by a rounding-sized amount, which training may amplify (a
chaotic seed). To tell an effect of f'(0) from the effect of *any* last-bit difference, the
control trains the same seed with f'(0) = 0 and one weight moved by one unit in the last place
at the start: the first hidden layer's weight [0, 0] of every seed, moved towards +inf by one
ulp of the precision that computes (bfloat16 or float16 for mixed-precision runs, whose float32
weights are cast to it before every product; the training precision otherwise). Everything else
(data order, noise, the other weights) is the seed's own.
"""

from __future__ import annotations

import torch
from torch import nn

# Suffix of the fingerprint (and of the point's folder) of a control run.
CONTROL = "ulp"


def suffix(compute_dtype: torch.dtype | None = None) -> str:
    """The fingerprint suffix of a control nudged by one ulp of ``compute_dtype``: ``CONTROL``
    when the weights' own dtype computes, with the dtype's name otherwise (so that a control
    nudged in float32 before mixed-precision runs were nudged in their compute dtype is not
    taken for one of these)."""
    if compute_dtype is None:
        return CONTROL
    return f"{CONTROL}_{str(compute_dtype).removeprefix('torch.')}"


def one_ulp_up(value: torch.Tensor, compute_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``value`` moved up by one unit in the last place of ``compute_dtype`` (its own dtype
    when None), in ``value``'s dtype.

    In mixed precision the weights are float32 but the products are computed in bfloat16 or
    float16: one float32 ulp is lost in the cast for all but a few weights (bfloat16 keeps 8
    of float32's 24 significand bits), so such a control would perturb nothing. Here the weight
    becomes the compute dtype's next number above the weight's own rounding to it: cast to the
    compute dtype, every weight then sits exactly one ulp above where it sat. (Adding that ulp
    to the float32 weight instead would be lost again where the rounding crosses a power of
    two or ties.)"""
    if compute_dtype is None or compute_dtype == value.dtype:
        return torch.nextafter(value, torch.full_like(value, torch.inf))
    rounded = value.to(compute_dtype)
    return torch.nextafter(rounded, torch.full_like(rounded, torch.inf)).to(value.dtype)


@torch.no_grad()
def perturb_one_ulp(model: nn.Module, compute_dtype: torch.dtype | None = None) -> None:
    """Move the first hidden layer's weight [0, 0] of every seed up by one ulp, in place: one
    ulp of ``compute_dtype``, the dtype the products are computed in (the autocast dtype of
    a mixed-precision run; the weights' own dtype when None).

    ``model`` is a ``SeedStack`` (parameters stacked along dim 0, one slice per seed) or a
    model holding one network per seed in ``model.models``.
    """
    per_seed = getattr(model, "models", None)
    if per_seed is not None:
        for network in per_seed:
            first = next(network.parameters())
            flat = first.view(-1)
            flat[0] = one_ulp_up(flat[0], compute_dtype)
        return
    first = model.weights[0]
    first[:, 0, 0] = one_ulp_up(first[:, 0, 0], compute_dtype)
