"""A lost MLflow store made again from the study's own files.

Every finished grid point keeps its whole record in ``results/runs/<point>/`` (``epochs.csv``,
``layers.csv``, ``point.json``), so when the SQLite store is deleted the runs can be sent to a
new store without training anything again: the same parent and seed runs, parameters, per-epoch
metrics, status tags and files, found by the same tags. This happens once, under the store's
lock, before any job starts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from relulab.study import config as cfg
from relulab.study.grid import Point, fingerprint
from relulab.train import store, tracking

log = logging.getLogger(__name__)


def resend_point(point: Point, config: dict, out_dir: Path, uri: str) -> bool:
    """Send one finished point's runs from its files; False if it has none for these settings."""
    from relulab.train.job import tracking_params

    try:
        summary = json.loads((out_dir / "point.json").read_text())
        epochs = pd.read_csv(out_dir / "epochs.csv")
        layers = pd.read_csv(out_dir / "layers.csv")
    except (OSError, ValueError):
        return False
    point_fingerprint = fingerprint(point, config)
    if summary.get("fingerprint") != point_fingerprint:
        return False
    seeds = cfg.seeds(config)
    tracker = tracking.PointTracker(uri, config["study"], point.id, point_fingerprint)
    tracker.start(tracking_params(point, config), seeds, {"resent_from": "csv"})
    as_int = {"seed": int, "epoch": int}
    tracker.queue_rows(
        epochs.astype(as_int).to_dict("records"),
        layers.astype({**as_int, "layer": int}).to_dict("records"),
    )
    statuses = {int(seed): info for seed, info in summary["seeds"].items()}
    tracker.finish(statuses, [out_dir / "epochs.csv", out_dir / "layers.csv"])
    summary["mlflow"] = {
        "tracking_uri": uri,
        "parent_run_id": tracker.parent_id,
        "seed_run_ids": {str(s): r for s, r in tracker.seed_runs.items()},
    }
    (out_dir / "point.json").write_text(json.dumps(summary, indent=2) + "\n")
    return True


def resend_lost_runs(
    uri: str,
    config: dict,
    points: list[Point],
    marker: str | Path = "results/mlflow/experiment.json",
    runs_dir: str | Path = "results/runs",
    artifact_root: str | Path = "results/mlartifacts",
) -> list[str]:
    """If the study's SQLite store is gone, make it again and re-send its finished points.

    Returns the ids of the points re-sent ([] when the store was not lost). Two processes
    calling this at once create the store once: the second finds it there under the lock.
    """
    if not store.lost(uri, marker):
        return []
    with store.store_lock(uri):
        if not store.lost(uri, marker):
            return []
        log.warning("the MLflow store %s is gone; making it again", store.sqlite_path(uri))
        tracking.ensure_experiment(uri, config["study"], artifact_root)
        sent = [
            point.id
            for point in points
            if resend_point(point, config, Path(runs_dir) / point.id, uri)
        ]
    log.warning("re-sent %d finished grid point(s) to %s from %s", len(sent), uri, runs_dir)
    return sent
