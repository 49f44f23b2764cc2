"""The training loss, cross-entropy per example and per seed, in the autocast type training uses.

Half-precision logits are reduced in float32, float32/float64 in their own dtype; training, the
measurement and the bifurcation experiment all take their losses from here.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F


def per_example_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each example: logits ``[S, B, C]``, labels ``[S, B]`` -> ``[S, B]``.

    Half-precision logits are reduced in float32; float32/float64 stay in their own dtype.
    """
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    seeds, batch, classes = logits.shape
    losses = F.cross_entropy(
        logits.reshape(seeds * batch, classes), labels.reshape(seeds * batch), reduction="none"
    )
    return losses.view(seeds, batch)


def per_seed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each seed: logits ``[S, B, C]``, labels ``[S, B]`` -> ``[S]``."""
    return per_example_cross_entropy(logits, labels).mean(dim=1)


def autocast(dtype: torch.dtype | None, device: torch.device):
    """``torch.autocast`` to ``dtype`` on ``device``'s type; nothing when ``dtype`` is None."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)
