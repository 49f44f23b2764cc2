"""The monitor as a Lightning callback: ``Trainer(callbacks=[DeadUnitMonitor()])``.

The only module of ``relulab.monitor`` that imports Lightning. Metrics go through every logger
of the trainer (``logger.log_metrics``: MLflow, TensorBoard, CSV alike), named as the study's
(``layer1/dead_fraction``); per-unit vectors go to a CSV file per check, logged as an MLflow
artifact when a logger is MLflow's, and every check's per-layer rows to ``layers.csv``. Under
DDP every process runs the check on its part of the probe set and the counts are summed
(``relulab.monitor.totals``); only rank 0 writes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from pathlib import Path

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import MLFlowLogger

from relulab.monitor.check import Check
from relulab.monitor.monitor import DEFAULT_CHUNK, Monitor, summed_cross_entropy
from relulab.monitor.probe import DEFAULT_SEED, DEFAULT_SIZE, ProbeSet

# A check every this many optimiser steps (and before and after training). A check of the
# default probe set costs about 22 training steps of a ResNet-18 at batch 64 on a CPU and 2 of the
# default MLP (benchmarks/monitor_overhead.py), so one per 1000 steps keeps the overhead near 2 %
# at most, under the 3 % target; one per 500 would cost a ResNet-18 about 4 %.
DEFAULT_EVERY_N_STEPS = 1000
ARTIFACT_DIR = "relulab_monitor"
LAYERS_FILE = "layers.csv"


class DeadUnitMonitor(Callback):
    """Checks the network every ``every_n_steps`` optimiser steps and/or ``every_n_epochs``,
    and before and after training (``check_at_start``, ``check_at_end``).

    ``network``: the attribute path of the ``nn.Module`` to monitor inside the LightningModule
    (``"model"`` for ``self.model``); the LightningModule itself by default (its forward must
    return the logits). ``probe``: a ``ProbeSet`` or data to draw one from; by default
    ``probe_size`` examples of the training data set, drawn with ``seed``. ``directory``: where
    the per-unit CSV files go (default: ``<trainer.default_root_dir>/relulab_monitor``).
    """

    def __init__(
        self,
        every_n_steps: int | None = DEFAULT_EVERY_N_STEPS,
        every_n_epochs: int | None = None,
        probe=None,
        probe_size: int = DEFAULT_SIZE,
        seed: int = DEFAULT_SEED,
        network: str | None = None,
        loss: Callable | None = summed_cross_entropy,
        chunk: int = DEFAULT_CHUNK,
        unit_dim: int = 1,
        check_at_start: bool = True,
        check_at_end: bool = True,
        directory: str | Path | None = None,
    ):
        if not every_n_steps and not every_n_epochs:
            raise ValueError("give every_n_steps or every_n_epochs (or both)")
        self.every_n_steps = every_n_steps
        self.every_n_epochs = every_n_epochs
        self.probe = probe
        self.probe_size = probe_size
        self.seed = seed
        self.network = network
        self.loss = loss
        self.chunk = chunk
        self.unit_dim = unit_dim
        self.check_at_start = check_at_start
        self.check_at_end = check_at_end
        self.directory = directory
        self.monitor: Monitor | None = None
        self._saved_state: dict | None = None
        self._last_step = -1

    def _network(self, module: LightningModule) -> torch.nn.Module:
        return operator.attrgetter(self.network)(module) if self.network else module

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.directory is None:
            self.directory = Path(trainer.default_root_dir) / ARTIFACT_DIR

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        probe = self.probe
        if not isinstance(probe, ProbeSet):
            data = probe if probe is not None else trainer.train_dataloader
            probe = ProbeSet.drawn(data, self.probe_size, self.seed)
        self.monitor = Monitor(
            self._network(pl_module), probe, self.loss, self.chunk, self.unit_dim
        )
        if self._saved_state is not None:
            self.monitor.load_state_dict(self._saved_state)
        elif self.check_at_start:
            self._check(trainer, trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and step != self._last_step:
            self._check(trainer, step)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        due = self.every_n_epochs and epoch % self.every_n_epochs == 0
        if due and trainer.global_step != self._last_step:
            self._check(trainer, trainer.global_step)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.check_at_end and trainer.global_step != self._last_step:
            self._check(trainer, trainer.global_step)

    def _check(self, trainer: Trainer, step: int) -> Check:
        check = self.monitor.check(step)
        self._last_step = step
        metrics = check.metrics()
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        if trainer.is_global_zero:
            self._write_units(trainer, check)
        return check

    def _write_units(self, trainer: Trainer, check: Check) -> None:
        directory = Path(self.directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"units_step{check.step:08d}.csv"
        check.unit_table().to_csv(path, index=False)
        # Every check's per-layer rows in one file, for plots of the run (``figure.run_figure``).
        layers = directory / LAYERS_FILE
        check.layer_table().to_csv(layers, mode="a", header=not layers.exists(), index=False)
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                logger.experiment.log_artifact(logger.run_id, str(path), ARTIFACT_DIR)

    def state_dict(self) -> dict:
        if self.monitor is None:
            return {}
        return {"monitor": self.monitor.state_dict(), "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict:
            self._saved_state = state_dict["monitor"]
            self._last_step = state_dict["last_step"]
