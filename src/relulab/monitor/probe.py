"""The examples a check measures on: a fixed, seeded draw from the training data, or all of it.

A monitor that measured on whatever batch training happened to see would compare different
examples at every check, and a unit "revived" only because the batch changed. So a check runs
on one probe set, drawn once: ``DEFAULT_SIZE`` examples without replacement by a generator of
its own (``seed``), sorted by index, the global RNG untouched. ``relulab audit`` draws the same
examples from the same data set with the same size and seed, so an audit of a checkpoint
measures what the training run's last check measured.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, default_collate

DEFAULT_SIZE = 1024
DEFAULT_SEED = 0


class EmptyProbeError(ValueError):
    """The probe set has no example."""


def _as_dataset(data) -> Dataset:
    if isinstance(data, DataLoader):
        return data.dataset
    if torch.is_tensor(data):
        return TensorDataset(data)
    if isinstance(data, tuple | list) and data and all(torch.is_tensor(t) for t in data):
        return TensorDataset(*data)
    return data


def _split(batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(inputs, targets) of a collated batch: ``x``, ``(x,)``, ``(x, y, ...)`` or a dict."""
    if torch.is_tensor(batch):
        return batch, None
    if isinstance(batch, dict):
        return batch["x" if "x" in batch else "input"], batch.get("y", batch.get("target"))
    if len(batch) == 1:
        return batch[0], None
    return batch[0], batch[1]


@dataclass(frozen=True)
class ProbeSet:
    """Inputs (and targets, for dL/dz) of the examples every check measures on."""

    inputs: torch.Tensor
    targets: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.inputs) == 0:
            raise EmptyProbeError("the probe set is empty: give the monitor at least one example")

    def __len__(self) -> int:
        return len(self.inputs)

    @classmethod
    def drawn(cls, data, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED) -> ProbeSet:
        """``size`` examples of ``data`` (a Dataset, a DataLoader's dataset, a tensor or a tuple
        of tensors) drawn once without replacement by ``seed``; all of them if fewer."""
        dataset = _as_dataset(data)
        n = len(dataset)
        if n == 0:
            raise EmptyProbeError("the data set to draw the probe set from is empty")
        generator = torch.Generator().manual_seed(seed)
        chosen = torch.randperm(n, generator=generator)[: min(size, n)].sort().values
        return cls(*_split(default_collate([dataset[int(i)] for i in chosen])))

    @classmethod
    def whole(cls, batches: Iterable) -> ProbeSet:
        """Every example of one pass over a DataLoader (held in memory for the checks)."""
        inputs, targets = [], []
        for batch in batches:
            x, y = _split(batch)
            inputs.append(x)
            targets.append(y)
        if not inputs:
            raise EmptyProbeError("the data loader yielded no batch")
        y = None if any(t is None for t in targets) else torch.cat(targets)
        return cls(torch.cat(inputs), y)

    def shard(self, rank: int, world_size: int) -> ProbeSet:
        """Every ``world_size``-th example from ``rank``: each process's part under DDP."""
        y = None if self.targets is None else self.targets[rank::world_size]
        return ProbeSet(self.inputs[rank::world_size], y)
