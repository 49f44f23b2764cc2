"""Small networks, data and a LightningModule for the monitor's tests (and ``relulab audit``).

Importable as ``helpers.monitored`` so that ``relulab audit helpers.monitored:mlp_factory``
can build the same network a test trained.
"""

from __future__ import annotations

import torch
from torch import nn

from relulab.nn import models

FEATURES, CLASSES = 12, 5


def mlp_factory() -> nn.Sequential:
    """relulab's own MLP with batch norm, seeded."""
    return models.seeded_mlp(
        3,
        in_features=FEATURES,
        width=16,
        depth=3,
        classes=CLASSES,
        activation="relu",
        batch_norm=True,
    )


def dataset(n: int = 300) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, FEATURES, generator=g)
    return torch.utils.data.TensorDataset(x, torch.randint(0, CLASSES, (n,), generator=g))


class ConvBN(nn.Module):
    """Conv -> BatchNorm -> in-place ReLU twice, pooled into a linear head."""

    def __init__(self, inplace: bool = True, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, dtype=dtype)
        self.bn1 = nn.BatchNorm2d(4, dtype=dtype)
        self.act1 = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(4, 6, 3, dtype=dtype)
        self.bn2 = nn.BatchNorm2d(6, dtype=dtype)
        self.act2 = nn.ReLU(inplace=inplace)
        self.head = nn.Linear(6, CLASSES, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.bn1(self.conv1(x)))
        h = self.act2(self.bn2(self.conv2(h)))
        return self.head(h.mean(dim=(2, 3)))


class Reused(nn.Module):
    """One ReLU module called twice, inside a nested container."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(FEATURES, 8), nn.Sequential(nn.Identity()))
        self.act = nn.ReLU()
        self.second = nn.Linear(8, 8)
        self.head = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.second(self.act(self.inner(x)))))


class Functional(nn.Module):
    """Its only activation is a function call: invisible to module hooks."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(FEATURES, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.relu(self.fc(x))


def ddp_check(rank: int, world_size: int, init_file: str, out: str) -> None:
    """One process of a DDP check on gloo: rank 0 saves the reduced per-unit results."""
    import torch.distributed as dist

    from relulab.monitor import Monitor, ProbeSet

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        model = ddp_model()
        check = Monitor(model, ProbeSet.drawn(dataset(), size=101, seed=2)).check()
        if rank == 0:
            torch.save([per_unit(layer) for layer in check.layers], out)
    finally:
        dist.destroy_process_group()


def ddp_model() -> nn.Sequential:
    model = models.seeded_mlp(
        9, in_features=FEATURES, width=16, depth=2, classes=CLASSES, activation="relu"
    )
    with torch.no_grad():
        model[0].bias[:3] = -3.0
    return model


def per_unit(layer) -> dict[str, torch.Tensor]:
    keys = ("dead", "inactive", "exact_zeros", "zero_outputs", "nonfinite", "grad_rms")
    return {key: getattr(layer, key) for key in keys} | {"values": layer.values}
