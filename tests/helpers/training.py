"""Training in tests: one Lightning Trainer as the tests use it, and a float64 seed stack.

Tests train ``SeedStackModule``s directly (without a job's checkpoints or MLflow); they all build
their Trainer here, so that a change to how relulab drives Lightning is made once.
"""

from __future__ import annotations

import lightning as L
import torch

from relulab.train.core import Settings
from relulab.train.lightning import SeedStackModule
from relulab.train.stacked import build_stack

WIDTH, DEPTH = 16, 2


def trainer(epochs: int, callbacks=(), device: str = "cpu") -> L.Trainer:
    """A quiet Trainer for ``epochs`` epochs: no logger, progress bar or checkpoints of its own."""
    return L.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        deterministic=True,
        logger=False,
        enable_checkpointing=any(
            isinstance(c, L.pytorch.callbacks.ModelCheckpoint) for c in callbacks
        ),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )


def train(
    split,
    seeds,
    activation="relu",
    zero_grad=0.0,
    batch_norm=False,
    optimizer="sgd",
    lr=0.1,
    epochs=2,
    callbacks=(),
    device="cpu",
) -> SeedStackModule:
    """The seeds of a WIDTH x DEPTH MLP trained together in float64 on ``split``."""
    stack = build_stack(
        seeds,
        split.in_features,
        split.classes,
        WIDTH,
        DEPTH,
        activation,
        zero_grad,
        batch_norm,
        "default",
        torch.float64,
        device,
    )
    settings = Settings(seeds=seeds, lr=lr, epochs=epochs, batch_size=128, optimizer=optimizer)
    module = SeedStackModule(stack, split.to(device, torch.float64), settings)
    trainer(epochs, callbacks, device).fit(module)
    return module


def die_after_epoch(monkeypatch, epoch: int) -> None:
    """Make training jobs save their checkpoint of ``epoch`` (1-based), then die (SystemExit),
    as a job killed right after that checkpoint would."""
    from relulab.train import job

    save = job.SaveEveryEpoch.on_train_epoch_end

    def save_then_die(self, trainer, module):
        save(self, trainer, module)
        if trainer.current_epoch + 1 == epoch:
            raise SystemExit(f"killed after epoch {epoch}")

    monkeypatch.setattr(job.SaveEveryEpoch, "on_train_epoch_end", save_then_die)
