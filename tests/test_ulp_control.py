"""The 1-ulp control nudges by one ulp of the dtype that computes (mixed precision included)."""

import pytest
import torch

from relulab.train import control
from relulab.train.stacked import build_stack

COMPUTE = [torch.bfloat16, torch.float16]


def _weights(n: int = 100_000) -> torch.Tensor:
    """float32 weights at the scale PyTorch's default init gives a width-100 layer."""
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, generator=g) * 2 - 1) * 0.1


@pytest.mark.parametrize("compute", COMPUTE)
def test_the_nudge_survives_the_cast_to_the_compute_dtype_for_nearly_all_weights(compute):
    weights = _weights()
    nudged = control.one_ulp_up(weights, compute)
    assert nudged.dtype == torch.float32  # the master weights stay float32
    cast, before = nudged.to(compute), weights.to(compute)
    next_up = torch.nextafter(before, torch.full_like(before, torch.inf))
    # Cast to the compute dtype, every weight lands on the next number above its own rounding.
    assert torch.equal(cast, next_up)
    assert bool((cast != before).all())
    assert bool((nudged != weights).all())


@pytest.mark.parametrize("compute", COMPUTE)
def test_one_float32_ulp_is_invisible_in_the_compute_dtype(compute):
    """Why the compute dtype matters: a float32 ulp vanishes in the cast for nearly all weights,
    so a control nudged by it perturbs nothing the forward pass computes."""
    weights = _weights()
    nudged = control.one_ulp_up(weights)
    assert ((nudged.to(compute) != weights.to(compute)).float().mean()) < 0.001


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_the_compute_dtype_equal_to_the_weights_is_one_ulp_of_their_own(dtype):
    weights = _weights(1000).to(dtype)
    expected = torch.nextafter(weights, torch.full_like(weights, torch.inf))
    assert torch.equal(control.one_ulp_up(weights, dtype), expected)
    assert torch.equal(control.one_ulp_up(weights), expected)


@pytest.mark.parametrize("compute", COMPUTE)
def test_perturb_moves_the_first_weight_of_every_seed_by_one_compute_ulp(compute):
    stack = build_stack([0, 1, 2], 5, 3, 4, 2, "relu", 0.0, False, "default", torch.float32)
    before = [p.detach().clone() for p in stack.parameters()]
    control.perturb_one_ulp(stack, compute_dtype=compute)
    first = stack.weights[0]
    moved = first[:, 0, 0].to(compute)
    was = before[0][:, 0, 0].to(compute)
    assert torch.equal(moved, torch.nextafter(was, torch.full_like(was, torch.inf)))
    changed = first != before[0]
    assert int(changed.sum()) == 3 and changed[:, 0, 0].all()
    for a, b in zip(before[1:], list(stack.parameters())[1:], strict=True):
        assert torch.equal(a, b)


def test_control_fingerprints_name_the_compute_dtype():
    assert control.suffix(None) == control.CONTROL == "ulp"
    assert control.suffix(torch.bfloat16) == "ulp_bfloat16"
    assert control.suffix(torch.float16) == "ulp_float16"
