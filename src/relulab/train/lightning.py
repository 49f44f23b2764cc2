"""Lightning's side of training: the LightningModule, the callbacks and the Trainer, wiring only.

The only module of relulab that imports Lightning. Lightning runs the epochs, the device
placement and the checkpoints; everything measured is ``relulab.train.core.SeedTraining``'s.
One Lightning step is one epoch of the core's own minibatch loop (manual optimisation), because
for models this small the per-step hooks of a default Lightning loop cost several times the
arithmetic.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from relulab.data.prepared import Split
from relulab.train.core import History, SeedModel, SeedTraining, Settings
from relulab.train.tracking import PointTracker


class SeedStackModule(L.LightningModule):
    """Trains any ``SeedModel`` with ``SeedTraining``; one Lightning step is one epoch."""

    def __init__(self, stack: SeedModel, data: Split, settings: Settings):
        super().__init__()
        self.stack = stack
        self.core = SeedTraining(stack, data, settings)
        self.automatic_optimization = False

    @property
    def history(self) -> History:
        return self.core.history

    @property
    def settings(self) -> Settings:
        return self.core.settings

    def configure_optimizers(self):
        return self.core.optimizer()

    def train_dataloader(self):
        # One item per epoch: the minibatch loop lives in the core.
        return torch.utils.data.DataLoader([0], batch_size=1)

    def on_train_start(self) -> None:
        self.core.start(self.device)

    def training_step(self, batch, batch_idx):
        optimizer = self.optimizers(use_pl_optimizer=False)
        if not self.core.train_epoch(optimizer, epoch=self.current_epoch + 1):
            self.trainer.should_stop = True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["relulab"] = self.core.state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.core.load_state(checkpoint["relulab"])


class TrackEpochs(Callback):
    """Queues each epoch's new rows for MLflow; the tracker sends them every few seconds.

    At the end of fit, which Lightning reaches even when a resumed job had no epoch left to
    train, the rows still unsent are queued for ``PointTracker.finish`` to send.
    """

    def __init__(self, tracker: PointTracker):
        self.tracker = tracker

    def on_train_epoch_end(self, trainer, module: SeedStackModule) -> None:
        self.tracker.log_rows(module.history.epochs, module.history.layers)

    def on_fit_end(self, trainer, module: SeedStackModule) -> None:
        self.tracker.queue_rows(module.history.epochs, module.history.layers)


class EveryEpoch(Callback):
    """Calls ``report(history_rows)`` after every epoch (a training job's progress line)."""

    def __init__(self, report):
        self.report = report

    def on_train_epoch_end(self, trainer, module: SeedStackModule) -> None:
        self.report(module.history.epochs)


class CheckBeforeEpoch(Callback):
    """Calls ``check(history)`` before every epoch; an exception it raises stops training."""

    def __init__(self, check):
        self.check = check

    def on_train_epoch_start(self, trainer, module: SeedStackModule) -> None:
        self.check(module.history)


class SaveEveryEpoch(Callback):
    """Replaces the checkpoint ``path`` (atomically) after every epoch.

    Lightning's ModelCheckpoint saves only when the optimiser step count has moved, and under
    relulab's manual optimisation that count stays 0, so it would save at the end alone.
    Runs after TrackEpochs. A checkpoint may hold epochs that MLflow has not yet received (the
    tracker sends every few seconds); they are in the checkpoint's history, and a resumed job
    sends every epoch after the newest one MLflow holds, so none is lost or sent twice.
    """

    def __init__(self, path: Path):
        self.path = path

    def on_train_epoch_end(self, trainer, module) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # resuming needs it all


def fit(
    module: SeedStackModule,
    device: torch.device,
    checkpoint: Path,
    resume: bool,
    tracker: PointTracker | None,
    progress=None,
    check=None,
) -> None:
    """Train ``module`` for its settings' epochs, checkpointing to ``checkpoint`` every epoch.

    ``resume`` continues from that checkpoint; ``tracker`` (optional) receives every epoch's rows;
    ``progress`` (optional) is called with the history's epoch rows after every epoch, ``check``
    (optional) with the history before every epoch.
    """
    callbacks: list[Callback] = [] if tracker is None else [TrackEpochs(tracker)]
    if check is not None:
        callbacks.append(CheckBeforeEpoch(check))
    if progress is not None:
        callbacks.append(EveryEpoch(progress))
    callbacks.append(SaveEveryEpoch(checkpoint))
    trainer = L.Trainer(
        max_epochs=module.settings.epochs,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        logger=False,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,  # SaveEveryEpoch writes the only checkpoint
        num_sanity_val_steps=0,
        deterministic=True,
        default_root_dir=checkpoint.parent,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        trainer.fit(module, ckpt_path=str(checkpoint) if resume else None)
