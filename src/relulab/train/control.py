"""The 1-ulp control of the zero_grad twins: how far does any last-bit difference carry?

Twins that differ only in f'(0) are bitwise equal until an exact zero meets a non-zero upstream
gradient; from then on they differ by a rounding-sized amount, which training may amplify (a
chaotic seed). To tell an effect of f'(0) from the effect of *any* last-bit difference, the
control trains the same seed with f'(0) = 0 and one weight moved by one unit in the last place
at the start: the first hidden layer's weight [0, 0] of every seed, moved towards +inf in the
training precision. Everything else (data order, noise, the other weights) is the seed's own.
"""

from __future__ import annotations

import torch
from torch import nn

# Suffix of the fingerprint (and of the point's folder) of a control run.
CONTROL = "ulp"


def one_ulp_up(value: torch.Tensor) -> torch.Tensor:
    """The next representable number above ``value`` in its own dtype."""
    return torch.nextafter(value, torch.full_like(value, torch.inf))


@torch.no_grad()
def perturb_one_ulp(model: nn.Module) -> None:
    """Move the first hidden layer's weight [0, 0] of every seed up by one ulp, in place.

    ``model`` is a ``SeedStack`` (parameters stacked along dim 0, one slice per seed) or a
    model holding one network per seed in ``model.models``.
    """
    per_seed = getattr(model, "models", None)
    if per_seed is not None:
        for network in per_seed:
            first = next(network.parameters())
            flat = first.view(-1)
            flat[0] = one_ulp_up(flat[0])
        return
    first = model.weights[0]
    first[:, 0, 0] = one_ulp_up(first[:, 0, 0])
