"""One forward (and backward) pass of a probe chunk with the activations' inputs captured.

Pre-activations are taken by forward *pre*-hooks, before the activation runs: a forward hook
on ``ReLU(inplace=True)`` would see its input already rectified. Each input is cloned, and an
in-place activation is handed a second clone to overwrite, so the captured tensor keeps the
pre-activations and stays in the autograd graph: dL/dz then comes from ``torch.autograd.grad``
on these tensors, which writes no parameter's ``.grad`` (full backward hooks, which in-place
modules break, are not used). A module called more than once in a forward pass (a ResNet
block's one ReLU) is one *call site* per call, each measured on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from relulab.nn import probes


@dataclass
class Call:
    """One activation call of a pass: where, its input z, and its outputs' exact zeros."""

    key: tuple[str, int]  # (module name, how many calls of it came before in the pass)
    module: nn.Module
    z: torch.Tensor
    zero_outputs: torch.Tensor | None = None  # per unit, int64


def unit_dims(z: torch.Tensor, unit_dim: int) -> tuple[int, ...]:
    """The dimensions a unit's values run over: all but ``unit_dim`` (examples, positions)."""
    return tuple(d for d in range(z.dim()) if d != unit_dim)


def run(
    model: nn.Module,
    named_acts: list[tuple[str, nn.Module]],
    x: torch.Tensor,
    y: torch.Tensor | None,
    loss: Callable | None,
    unit_dim: int,
) -> tuple[list[Call], list[torch.Tensor | None]]:
    """Calls of one pass on ``x`` and, when ``loss`` and ``y`` are given, dL/dz of each call
    (None where z does not reach the loss). Without a loss the pass runs without gradients."""
    calls: list[Call] = []
    open_calls: dict[int, list[Call]] = {}
    names = {id(m): name for name, m in named_acts}
    seen: dict[int, int] = {}
    grad = loss is not None and y is not None

    def before(module: nn.Module, args: tuple):
        z = args[0]
        kept = z.clone()
        index = seen.get(id(module), 0)
        seen[id(module)] = index + 1
        call = Call((names[id(module)], index), module, kept)
        calls.append(call)
        open_calls.setdefault(id(module), []).append(call)
        passed = kept.clone() if getattr(module, "inplace", False) else kept
        return (passed, *args[1:])

    def after(module: nn.Module, _args: tuple, output: torch.Tensor) -> None:
        call = open_calls[id(module)].pop()
        h = output.detach()
        call.zero_outputs = probes.zero_count(h, unit_dims(h, unit_dim))

    handles = []
    try:
        for _, module in named_acts:
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))
        if not grad:
            with torch.no_grad():
                model(x)
            return calls, [None] * len(calls)
        with torch.enable_grad():
            if x.is_floating_point():
                x = x.detach().requires_grad_(True)
            out = model(x)
            wanted = [c.z for c in calls if c.z.requires_grad]
            value = loss(out, y)
            grads = iter(torch.autograd.grad(value, wanted, allow_unused=True) if wanted else [])
            return calls, [next(grads) if c.z.requires_grad else None for c in calls]
    finally:
        for handle in handles:
            handle.remove()
        for call in calls:
            call.z = call.z.detach()
