"""A thin LightningModule for the monitor's callback tests (module level, so DDP can pickle it)."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn


class Classifier(L.LightningModule):
    """``network`` as ``self.model``, cross-entropy, plain SGD at ``lr``."""

    def __init__(self, network: nn.Module, lr: float = 0.5):
        super().__init__()
        self.model = network
        self.lr = lr

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)
