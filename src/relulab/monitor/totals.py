"""Per-unit counts of a check, summed over probe chunks and, under DDP, over processes.

Every quantity is a count or a sum, so chunks and processes combine exactly: a unit is dead
when no chunk found it not dead (``probes.dead_mask_of`` per chunk, the study's definition),
inactive likewise; exact zeros, zero outputs and non-finite values are counts; the backward
signal is a float64 sum of squares of dL/dz.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from relulab.monitor.capture import Call, unit_dims
from relulab.nn import probes

# Counted per unit, int64; summed over chunks and processes.
COUNTS = (
    "not_dead",
    "not_inactive",
    "not_dead_at_inference",
    "not_inactive_at_inference",
    "exact_zeros",
    "zero_outputs",
    "nonfinite",
)


@contextmanager
def _out_of_place(module: nn.Module):
    """The activation computes out of place while its derivative is taken from a copy of z."""
    inplace = getattr(module, "inplace", False)
    if inplace:
        module.inplace = False
    try:
        yield module
    finally:
        if inplace:
            module.inplace = True


def unit_masks(module: nn.Module, z: torch.Tensor, unit_dim: int):
    """(dead, inactive) per unit of one chunk's pre-activations, by ``relulab.nn.probes``."""
    keep = (unit_dim,)
    with _out_of_place(module), torch.no_grad():
        dead = probes.dead_mask_of(module, z, keep)
    return dead, probes.inactive_mask(z, keep)


@dataclass
class LayerTotals:
    """One call site's per-unit totals over the chunks seen so far."""

    name: str
    kind: str
    units: int
    values: int = 0  # (example, position) pairs per unit
    counts: dict[str, torch.Tensor] = field(default_factory=dict)
    grad_sumsq: torch.Tensor | None = None  # float64 per unit; None without targets

    def _add(self, key: str, value: torch.Tensor) -> None:
        value = value.to(device="cpu", dtype=torch.int64)
        self.counts[key] = self.counts[key] + value if key in self.counts else value

    def add_training_view(self, call: Call, grad: torch.Tensor | None, unit_dim: int) -> None:
        z = call.z
        dims = unit_dims(z, unit_dim)
        dead, inactive = unit_masks(call.module, z, unit_dim)
        self.values += z.numel() // self.units
        self._add("not_dead", ~dead)
        self._add("not_inactive", ~inactive)
        self._add("exact_zeros", probes.exact_zeros(z, dims))
        self._add("zero_outputs", call.zero_outputs)
        self._add("nonfinite", probes.nonfinite_count(z, dims))
        if grad is not None:
            squares = grad.detach().double().square().sum(dim=dims).cpu()
            self.grad_sumsq = squares if self.grad_sumsq is None else self.grad_sumsq + squares
        elif self.grad_sumsq is None:
            self.grad_sumsq = torch.full((self.units,), float("nan"), dtype=torch.float64)

    def add_inference_view(self, call: Call, unit_dim: int) -> None:
        dead, inactive = unit_masks(call.module, call.z, unit_dim)
        self._add("not_dead_at_inference", ~dead)
        self._add("not_inactive_at_inference", ~inactive)

    def same_at_inference(self) -> None:
        """Without batch norm inference computes what training computes: one view for both."""
        self.counts["not_dead_at_inference"] = self.counts["not_dead"].clone()
        self.counts["not_inactive_at_inference"] = self.counts["not_inactive"].clone()


def reduce_across_processes(layers: list[LayerTotals]) -> None:
    """Sum every layer's counts over the processes of a DDP run (in place); a no-op otherwise.

    Every process must call it, with its layers in the same order (the same model).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    ints = torch.cat(
        [torch.tensor([t.values for t in layers])] + [t.counts[k] for t in layers for k in COUNTS]
    ).to(device)
    floats = torch.cat([t.grad_sumsq for t in layers]).to(device)
    dist.all_reduce(ints)
    dist.all_reduce(floats)
    ints, floats = ints.cpu(), floats.cpu()
    for i, t in enumerate(layers):
        t.values = int(ints[i])
    at, start = len(layers), 0
    for t in layers:
        for k in COUNTS:
            t.counts[k] = ints[at : at + t.units]
            at += t.units
        t.grad_sumsq = floats[start : start + t.units]
        start += t.units
