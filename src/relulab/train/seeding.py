"""The random streams of a seed: its data order and its RReLU noise, independent of each other,
of the activation and of ``zero_grad`` (so that runs differing only in ``zero_grad`` are twins).
"""

from __future__ import annotations

import torch

# Independent random streams derived from one seed.
ORDER_STREAM = 1_000_003
NOISE_STREAM = 2_000_003


def generator(seed: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed * 7919 + stream)
    return g
