"""One training job: all seeds of one grid point, tracked in MLflow, written as CSV and JSON.

The job resumes from its last checkpoint when it was interrupted, and finds its MLflow runs
again by their tags, so running it twice neither retrains finished epochs nor duplicates runs.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from relulab.data import prepared as datasets
from relulab.study import config as cfg
from relulab.study.grid import Point, expand, fingerprint, is_finished
from relulab.train import control, store, tracking
from relulab.train import conv as conv_training
from relulab.train.core import DTYPES, Settings, build_stack, parameter_hashes, seed_status
from relulab.train.lightning import SaveEveryEpoch as SaveEveryEpoch  # tests patch it here
from relulab.train.lightning import SeedStackModule, fit
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
    "dead_at_inference_fraction",
    "inactive_at_inference_fraction",
    "status",
    "params_sha256",
]


# A progress line: ``progress <point> epoch <e>/<n> ...``; ``relulab status`` reads these.
PROGRESS = "progress"


def progress_line(point_id: str, rows: list[dict], epochs: int, seconds_per_epoch: float) -> str:
    """One line per trained epoch, so that ``tail -f`` on a job's log shows where it is.

    ``rows`` are the history's epoch rows; the newest epoch's mean validation accuracy and dead
    fraction over the seeds that have a finite value are shown.
    """
    epoch = max(row["epoch"] for row in rows)
    newest = [row for row in rows if row["epoch"] == epoch]

    def mean(key: str) -> str:
        values = [row[key] for row in newest if math.isfinite(row.get(key, math.nan))]
        return f"{sum(values) / len(values):.3f}" if values else "n/a"

    left = (epochs - epoch) * seconds_per_epoch
    return (
        f"{PROGRESS} {point_id} epoch {epoch}/{epochs}: val_accuracy {mean('val_accuracy')}, "
        f"dead_fraction {mean('dead_fraction')} (mean of {len(newest)} seeds); "
        f"{seconds_per_epoch:.1f} s/epoch, about {left:.0f} s left"
    )


class ProgressLog:
    """Logs ``progress_line`` after every epoch (called by the training's epoch hook)."""

    def __init__(self, point_id: str, epochs: int):
        self.point_id, self.epochs = point_id, epochs
        self.since = time.monotonic()

    def __call__(self, rows: list[dict]) -> None:
        now = time.monotonic()
        log.info(progress_line(self.point_id, rows, self.epochs, now - self.since))
        self.since = now


def varying_axes(config: dict) -> set[str]:
    """The grid axes with more than one value in the study (they name the runs)."""
    points = [point.params() for point in expand(config)]
    return {key for key in points[0] if len({p[key] for p in points}) > 1}


class NonFiniteStartError(ValueError):
    """The untrained network's loss is NaN or infinite: bad data or settings, not divergence."""


class RefuseNonFiniteStart:
    """Stops training before its first epoch if a seed's loss is not finite at epoch 0.

    A network diverges by training; one that is non-finite before any step was given bad
    inputs or settings (data with NaN, a precision that overflows), and calling that
    "diverged" would hide the cause. Called with the training's history before each epoch.
    """

    def __init__(self, point_id: str, data_path: str | Path):
        self.point_id = point_id
        self.data_path = data_path

    def __call__(self, history) -> None:
        bad = [row["seed"] for row in history.epochs if row["epoch"] == 0]
        bad = [s for s in bad if history.diverged_epoch.get(s) == 0]
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
    perturbed: bool = False,
) -> dict:
    """Train every seed of ``point``; write ``epochs.csv``, ``layers.csv`` and ``point.json``.

    ``tracking_uri=None`` trains without MLflow (used by benchmarks, tests and controls). A point
    whose outputs in ``out_dir`` are complete and match its fingerprint and seeds is not trained
    again: its ``point.json`` is returned as it is. ``perturbed``: the 1-ulp control
    (``relulab.train.control``): one weight per seed moved by one ulp before training. One
    process at a time trains a point (``point_lock``); one that waited for another to finish the
    point returns that process's summary instead of training it again.
    """
    out_dir = Path(out_dir)
    if is_finished(point, config, out_dir):
        log.info("%s is already finished with these settings; not training it again", point.id)
        return json.loads((out_dir / "point.json").read_text())
    with point_lock(out_dir, point.id) as waited:
        if waited and is_finished(point, config, out_dir):
            log.info("%s was trained by another process meanwhile; not training it again", point.id)
            return json.loads((out_dir / "point.json").read_text())
        return _run_point(point, config, data_path, out_dir, tracking_uri, perturbed)


def _run_point(
    point: Point,
    config: dict,
    data_path: str | Path,
    out_dir: Path,
    tracking_uri: str | None,
    perturbed: bool,
) -> dict:
    """``run_point`` once the point's lock is held."""
    store.set_outage_timeout(config.get("tracking_timeout_s", store.DEFAULT_OUTAGE_TIMEOUT_S))
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = cfg.seeds(config)
    model_cfg, train_cfg = config["model"], config["training"]
    device = resolve_device(train_cfg["device"])
    dtype = DTYPES[point.precision]
    point_fingerprint = fingerprint(point, config)
    if perturbed:
        point_fingerprint += f"+{control.CONTROL}"

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
    else:
        in_shape = tuple(split.x_train.shape[1:])
        stack = conv_training.build_models(seeds, arch, in_shape=in_shape, **architecture)
    settings = Settings(
        seeds=seeds,
        lr=point.lr,
        epochs=train_cfg["epochs"],
        batch_size=train_cfg["batch_size"],
        optimizer=point.optimizer,
        weight_decay=train_cfg["weight_decay"],
        fingerprint=point_fingerprint,
    )
    if perturbed:
        control.perturb_one_ulp(stack)
    module = SeedStackModule(stack, split.to(device, dtype), settings)

    params = tracking_params(point, config)
    tracker = None
    if tracking_uri is not None:
        tracker = PointTracker(tracking_uri, config["study"], point.id, point_fingerprint)
        profile = {"train": len(split.y_train), "test": len(split.y_test)}
        tracker.start(
            params,
            seeds,
            provenance(device),
            name=tracking.run_name(point.params(), varying_axes(config)),
            dataset=tracking.dataset_entity(config["dataset"], data_path, profile),
        )

    checkpoint_dir = out_dir / "checkpoints"
    last = checkpoint_dir / "last.ckpt"
    done = _resumable(last, point_fingerprint)
    if done is not None:
        log.info("resuming %s after epoch %d from %s", point.id, done, last)
    else:
        log.info("training %s: %d seeds, %d epochs", point.id, len(seeds), settings.epochs)
    progress = ProgressLog(point.id, settings.epochs)
    fit(
        module,
        device,
        last,
        resume=done is not None,
        tracker=tracker,
        progress=progress,
        check=RefuseNonFiniteStart(point.id, data_path),
    )

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
        "perturbed": perturbed,
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
