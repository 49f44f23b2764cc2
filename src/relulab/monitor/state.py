"""What a check must leave as it found it: modes, buffers, gradients and random state.

A check runs the model in eval mode and, with batch norm, swaps its statistics; a training
run must continue afterwards exactly as without it. Everything restored is restored in place
(buffers copied back into the same tensors), so optimisers, DDP and compiled graphs that hold
references keep valid ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def preserved(model: nn.Module) -> Iterator[None]:
    """Restore, on exit, every submodule's train/eval flag, every buffer's value, every
    parameter's ``.grad`` (the tensor itself) and torch's CPU and CUDA random states."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    grads = [(p, p.grad) for p in model.parameters()]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for parameter, grad in grads:
            parameter.grad = grad
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
