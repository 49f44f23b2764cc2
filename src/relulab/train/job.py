"""One training job: all seeds of one grid point, tracked in MLflow, written as CSV and JSON.

The job resumes from its last checkpoint when it was interrupted, and finds its MLflow runs
again by their tags, so running it twice neither retrains finished epochs nor duplicates runs.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback

from relulab.data import prepared as datasets
from relulab.study import config as cfg
from relulab.study.grid import Point, fingerprint, is_finished
from relulab.train import conv as conv_training
from relulab.train.core import (
    DTYPES,
    SeedStackModule,
    Settings,
    build_stack,
    parameter_hashes,
    seed_status,
)
from relulab.train.provenance import provenance
from relulab.train.tracking import PointTracker

log = logging.getLogger(__name__)

EPOCH_COLUMNS = [
    "seed",
    "epoch",
    "step",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "dead_fraction",
    "inactive_fraction",
    "exact_zeros",
    "live_exact_zeros",
    "status",
    "params_sha256",
]


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def _resumable(checkpoint: Path, expected_fingerprint: str) -> int | None:
    """The number of epochs a usable checkpoint holds; None when there is nothing to resume."""
    if not checkpoint.exists():
        return None
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a torn checkpoint is simply not resumable
        log.warning("ignoring unreadable checkpoint %s", checkpoint)
        return None
    if saved.get("relulab", {}).get("fingerprint") != expected_fingerprint:
        log.warning("ignoring checkpoint %s of other settings", checkpoint)
        return None
    return int(saved["epoch"]) + 1


def run_point(
    point: Point,
    config: dict,
    data_path: str | Path,
    out_dir: str | Path,
    tracking_uri: str | None,
) -> dict:
    """Train every seed of ``point``; write ``epochs.csv``, ``layers.csv`` and ``point.json``.

    ``tracking_uri=None`` trains without MLflow (used by benchmarks and tests). A point whose
    outputs in ``out_dir`` are complete and match its fingerprint and seeds is not trained
    again: its ``point.json`` is returned as it is.
    """
    out_dir = Path(out_dir)
    if is_finished(point, config, out_dir):
        log.info("%s is already finished with these settings; not training it again", point.id)
        return json.loads((out_dir / "point.json").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = cfg.seeds(config)
    model_cfg, train_cfg = config["model"], config["training"]
    device = resolve_device(train_cfg["device"])
    dtype = DTYPES[point.precision]
    point_fingerprint = fingerprint(point, config)

    arch = model_cfg["arch"]
    split = datasets.load(data_path, flatten=arch == "mlp")
    architecture = {
        "classes": split.classes,
        "width": model_cfg["width"],
        "depth": point.depth,
        "activation": point.activation,
        "zero_grad": point.zero_grad,
        "batch_norm": point.batch_norm,
        "init": point.init,
        "dtype": dtype,
        "device": device,
    }
    if arch == "mlp":
        stack = build_stack(seeds, in_features=split.in_features, **architecture)
        module_class = SeedStackModule
    else:
        in_shape = tuple(split.x_train.shape[1:])
        stack = conv_training.build_models(seeds, arch, in_shape=in_shape, **architecture)
        module_class = conv_training.ConvSeedsModule
    settings = Settings(
        seeds=seeds,
        lr=point.lr,
        epochs=train_cfg["epochs"],
        batch_size=train_cfg["batch_size"],
        optimizer=point.optimizer,
        weight_decay=train_cfg["weight_decay"],
        fingerprint=point_fingerprint,
    )
    module = module_class(stack, split.to(device, dtype), settings)

    params = {
        **point.params(),
        "point": point.id,
        "dataset": config["dataset"],
        "data_seed": config["data_seed"],
        "arch": arch,
        "width": model_cfg["width"],
        "epochs": train_cfg["epochs"],
        "batch_size": train_cfg["batch_size"],
        "weight_decay": train_cfg["weight_decay"],
    }
    tracker = None
    callbacks: list[Callback] = []
    if tracking_uri is not None:
        tracker = PointTracker(tracking_uri, config["study"], point.id, point_fingerprint)
        tracker.start(params, seeds, provenance(device))
        callbacks.append(TrackEpochs(tracker))

    checkpoint_dir = out_dir / "checkpoints"
    last = checkpoint_dir / "last.ckpt"
    callbacks.append(SaveEveryEpoch(last))
    trainer = L.Trainer(
        max_epochs=settings.epochs,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        logger=False,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,  # SaveEveryEpoch writes the only checkpoint
        num_sanity_val_steps=0,
        deterministic=True,
        default_root_dir=out_dir,
    )
    done = _resumable(last, point_fingerprint)
    resume = done is not None
    if resume:
        log.info("resuming %s after epoch %d from %s", point.id, done, last)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        trainer.fit(module, ckpt_path=str(last) if resume else None)

    history = module.history
    epochs = pd.DataFrame(history.epochs, columns=EPOCH_COLUMNS)
    layers = pd.DataFrame(history.layers)
    epochs.to_csv(out_dir / "epochs.csv", index=False)
    layers.to_csv(out_dir / "layers.csv", index=False)
    statuses = seed_status(history, seeds)
    # The final weights' fingerprint: zero_grad twins are bitwise equal exactly when it is.
    for seed, digest in zip(seeds, parameter_hashes(module.stack), strict=True):
        statuses[seed]["params_sha256"] = digest
    summary = {
        "point": point.id,
        "params": point.params(),
        "fingerprint": point_fingerprint,
        "seeds": {str(seed): info for seed, info in statuses.items()},
        "mlflow": {
            "tracking_uri": tracking_uri,
            "parent_run_id": tracker.parent_id if tracker else None,
            "seed_run_ids": {str(s): r for s, r in (tracker.seed_runs if tracker else {}).items()},
        },
    }
    if tracker is not None:
        tracker.finish(statuses, [out_dir / "epochs.csv", out_dir / "layers.csv"])
    (out_dir / "point.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return summary
