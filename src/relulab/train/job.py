"""One training job: all seeds of one grid point, tracked in MLflow, written as CSV and JSON.

The job resumes from its last checkpoint when it was interrupted, and finds its MLflow runs
again by their tags, so running it twice neither retrains finished epochs nor duplicates runs.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import torch

from relulab.data import prepared as datasets
from relulab.study import config as cfg
from relulab.study.grid import Point, fingerprint, is_finished
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
    module = SeedStackModule(stack, split.to(device, dtype), settings)

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
    if tracking_uri is not None:
        tracker = PointTracker(tracking_uri, config["study"], point.id, point_fingerprint)
        tracker.start(params, seeds, provenance(device))

    checkpoint_dir = out_dir / "checkpoints"
    last = checkpoint_dir / "last.ckpt"
    done = _resumable(last, point_fingerprint)
    if done is not None:
        log.info("resuming %s after epoch %d from %s", point.id, done, last)
    fit(module, device, last, resume=done is not None, tracker=tracker)

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
