"""Per-seed fingerprints of a model's weights: two seeds' networks are bitwise equal exactly when
their hashes are (the f'(0) twins' test, and the ``params_sha256`` of every epoch row)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def parameter_hashes(model: nn.Module) -> list[str]:
    """Per seed, the sha256 of its parameters and buffers (names and raw bytes, in order).

    Two seeds' hashes are equal exactly when their weights are bitwise equal. For a
    ``SeedStack`` a seed is slice ``[s]`` of every tensor; for a model holding one network per
    seed (``model.models``) it is that network's whole state.
    """
    per_seed = getattr(model, "models", None)
    if per_seed is not None:
        states = [m.state_dict().items() for m in per_seed]
    else:
        state = model.state_dict()
        states = [[(name, t[s]) for name, t in state.items()] for s in range(model.seeds)]
    hashes = []
    for items in states:
        digest = hashlib.sha256()
        for name, tensor in items:
            digest.update(name.encode())
            raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
            digest.update(raw.numpy().tobytes())
        hashes.append(digest.hexdigest())
    return hashes
