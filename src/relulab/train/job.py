"""One training job: all seeds of one grid point, tracked in MLflow, written as CSV and JSON.

The job resumes from its last checkpoint when it was interrupted, and finds its MLflow runs
again by their tags, so running it twice neither retrains finished epochs nor duplicates runs.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback

from relulab.data import prepared as datasets
from relulab.study import config as cfg
from relulab.study.grid import Point, fingerprint
from relulab.train import conv as conv_training
from relulab.train import store
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


class NonFiniteStartError(ValueError):
    """The untrained network's loss is NaN or infinite: bad data or settings, not divergence."""


class RefuseNonFiniteStart(Callback):
    """Stops training before its first epoch if a seed's loss is not finite at epoch 0.

    A network diverges by training; one that is non-finite before any step was given bad
    inputs or settings (data with NaN, a precision that overflows), and calling that
    "diverged" would hide the cause.
    """

    def __init__(self, point_id: str, data_path: str | Path):
        self.point_id = point_id
        self.data_path = data_path

    def on_train_epoch_start(self, trainer, module) -> None:
        bad = [row["seed"] for row in module.history.epochs if row["epoch"] == 0]
        bad = [s for s in bad if module.history.diverged_epoch.get(s) == 0]
        if bad:
            raise NonFiniteStartError(
                f"{self.point_id}: the loss of the untrained network (epoch 0) is NaN or "
                f"infinite for seed(s) {bad}. That is a data or configuration error, not "
                f"divergence: check the prepared data {self.data_path} and the settings that "
                "scale the first forward pass (training.precision, model.init, model.width)"
            )


@contextmanager
def point_lock(out_dir: Path, point_id: str) -> Iterator[bool]:
    """Hold ``out_dir/training.lock`` while a point trains: one process per point at a time.

    A second process (say, a second Snakemake started after ``--unlock`` while the first
    still runs) waits here until the first is done, then yields True ("waited"). The lock
    belongs to the process, so it is gone when the process dies, however it dies.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "training.lock", "a+") as handle:
        waited = False
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            log.warning(
                "%s is being trained by %s (lock %s); waiting for it to finish",
                point_id,
                holder,
                out_dir / "training.lock",
            )
            fcntl.flock(handle, fcntl.LOCK_EX)
            waited = True
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        try:
            yield waited
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _finished_summary(out_dir: Path, point_fingerprint: str) -> dict | None:
    """The point.json another process wrote for these settings, if it finished the point."""
    try:
        summary = json.loads((out_dir / "point.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if summary.get("fingerprint") == point_fingerprint else None


def tracking_params(point: Point, config: dict) -> dict:
    """The parameters a point's MLflow runs carry."""
    model_cfg, train_cfg = config["model"], config["training"]
    return {
        **point.params(),
        "point": point.id,
        "dataset": config["dataset"],
        "data_seed": config["data_seed"],
        "arch": model_cfg["arch"],
        "width": model_cfg["width"],
        "init": model_cfg["init"],
        "epochs": train_cfg["epochs"],
        "batch_size": train_cfg["batch_size"],
        "weight_decay": train_cfg["weight_decay"],
    }


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

    ``tracking_uri=None`` trains without MLflow (used by benchmarks and tests). One process
    at a time trains a point (``point_lock``); one that waited for another to finish the
    point returns that process's summary instead of training it again.
    """
    out_dir = Path(out_dir)
    with point_lock(out_dir, point.id) as waited:
        finished = _finished_summary(out_dir, fingerprint(point, config)) if waited else None
        if finished is not None:
            log.info("%s was trained by another process meanwhile; not training it again", point.id)
            return finished
        return _run_point(point, config, data_path, out_dir, tracking_uri)


def _run_point(
    point: Point, config: dict, data_path: str | Path, out_dir: Path, tracking_uri: str | None
) -> dict:
    """``run_point`` once the point's lock is held."""
    store.set_outage_timeout(config.get("tracking_timeout_s", store.DEFAULT_OUTAGE_TIMEOUT_S))
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
        "init": model_cfg["init"],
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

    params = tracking_params(point, config)
    tracker = None
    callbacks: list[Callback] = [RefuseNonFiniteStart(point.id, data_path)]
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
