"""Every MLflow call of relulab.

One parent run per grid point, one nested child run per (grid point, seed). Runs are found again
by their tags, so a job that is interrupted and run again continues its own runs instead of
creating duplicates, and epochs already logged are not logged twice.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

DEFAULT_URI = "sqlite:///results/mlflow.db"
TAG_POINT = "relulab.point"
TAG_SEED = "relulab.seed"
TAG_FINGERPRINT = "relulab.fingerprint"
TAG_ROLE = "relulab.role"
TAG_PARAMS_SHA256 = "relulab.params_sha256"

T = TypeVar("T")


def tracking_uri(configured: str | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the config's ``tracking_uri``, else the default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or DEFAULT_URI


def _retry(call: Callable[[], T], attempts: int = 8) -> T:
    """Retry a store call that hit a transient lock (SQLite with several writers)."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - MLflow wraps SQLAlchemy errors variously
            transient = "locked" in str(error) or "busy" in str(error).lower()
            if not transient or attempt == attempts - 1:
                raise
            # Jitter, so that writers that collided do not collide again in step.
            time.sleep(0.2 * 2**attempt * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str, artifact_root: str | Path | None = None) -> str:
    """Create the store (if new) and the experiment once, before any training job starts."""
    client = _client(uri)
    experiment = _retry(lambda: client.get_experiment_by_name(name))
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if artifact_root is not None and not uri.startswith(("http://", "https://")):
        location = Path(artifact_root).resolve().as_uri()
    return _retry(lambda: client.create_experiment(name, artifact_location=location))


def experiment_id(uri: str, name: str) -> str:
    experiment = _retry(lambda: _client(uri).get_experiment_by_name(name))
    if experiment is None:
        raise RuntimeError(f"MLflow experiment {name!r} does not exist at {uri}; run init first")
    return experiment.experiment_id


def _flat(params: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


class PointTracker:
    """The MLflow runs of one grid point: a parent run and one child run per seed."""

    def __init__(self, uri: str, experiment: str, point_id: str, fingerprint: str):
        self.uri = uri
        self.client = _client(uri)
        self.experiment_id = experiment_id(uri, experiment)
        self.point_id = point_id
        self.fingerprint = fingerprint
        self.parent_id: str | None = None
        self.seed_runs: dict[int, str] = {}
        self.logged_epochs: dict[int, int] = {}

    def _find(self, role: str, seed: int | None = None):
        query = (
            f"tags.`{TAG_POINT}` = '{self.point_id}' and tags.`{TAG_ROLE}` = '{role}'"
            f" and tags.`{TAG_FINGERPRINT}` = '{self.fingerprint}'"
        )
        if seed is not None:
            query += f" and tags.`{TAG_SEED}` = '{seed}'"
        runs = _retry(lambda: self.client.search_runs([self.experiment_id], query, max_results=2))
        return runs[0] if runs else None

    def _create(self, name: str, tags: dict[str, str], params: dict[str, str]) -> str:
        run = _retry(lambda: self.client.create_run(self.experiment_id, run_name=name, tags=tags))
        from mlflow.entities import Param

        batch = [Param(k, v[:6000]) for k, v in params.items()]
        for start in range(0, len(batch), 100):
            chunk = batch[start : start + 100]
            _retry(lambda chunk=chunk: self.client.log_batch(run.info.run_id, params=chunk))
        return run.info.run_id

    def start(self, params: dict, seeds: Iterable[int], provenance: dict | None = None) -> None:
        """Find or create the runs, and note which epochs they already hold."""
        base_tags = {TAG_POINT: self.point_id, TAG_FINGERPRINT: self.fingerprint}
        base_tags.update({f"relulab.{k}": str(v) for k, v in (provenance or {}).items()})
        flat = _flat(params)
        parent = self._find("point")
        if parent is None:
            self.parent_id = self._create(
                self.point_id, {**base_tags, TAG_ROLE: "point", "status": "running"}, flat
            )
        else:
            self.parent_id = parent.info.run_id
        for seed in seeds:
            run = self._find("seed", seed)
            if run is None:
                tags = {
                    **base_tags,
                    TAG_ROLE: "seed",
                    TAG_SEED: str(seed),
                    "mlflow.parentRunId": self.parent_id,
                    "status": "running",
                }
                run_id = self._create(
                    f"{self.point_id}_seed{seed}", tags, {**flat, "seed": str(seed)}
                )
                self.logged_epochs[seed] = -1
            else:
                run_id = run.info.run_id
                history = _retry(
                    lambda run_id=run_id: self.client.get_metric_history(run_id, "val_accuracy")
                )
                self.logged_epochs[seed] = max((m.step for m in history), default=-1)
            self.seed_runs[seed] = run_id

    def log_rows(self, epoch_rows: list[dict], layer_rows: list[dict]) -> None:
        """Log per-epoch (and per-layer) metrics of the rows not yet in MLflow, one batch a run."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batches: dict[int, list] = {seed: [] for seed in self.seed_runs}
        newest: dict[int, int] = {}
        for row in epoch_rows:
            seed, epoch = row["seed"], row["epoch"]
            if epoch <= self.logged_epochs.get(seed, -1):
                continue
            newest[seed] = max(newest.get(seed, -1), epoch)
            for key, value in row.items():
                if key not in ("seed", "epoch", "status", "step") and not isinstance(value, str):
                    batches[seed].append(Metric(key, float(value), now, epoch))
        for row in layer_rows:
            seed, epoch = row["seed"], row["epoch"]
            if epoch <= self.logged_epochs.get(seed, -1):
                continue
            for key, value in row.items():
                if key not in ("seed", "epoch", "layer"):
                    name = f"layer{row['layer']}.{key}"
                    batches[seed].append(Metric(name, float(value), now, epoch))
        for seed, metrics in batches.items():
            # val_accuracy goes last: its history marks the epochs that are fully logged.
            metrics.sort(key=lambda m: m.key == "val_accuracy")
            for start in range(0, len(metrics), 900):
                chunk = metrics[start : start + 900]
                _retry(
                    lambda seed=seed, chunk=chunk: self.client.log_batch(
                        self.seed_runs[seed], metrics=chunk
                    )
                )
        for seed, epoch in newest.items():
            self.logged_epochs[seed] = epoch

    def finish(self, statuses: dict[int, dict], artifacts: Iterable[Path] = ()) -> None:
        """Tag each seed's final status, attach the point's files, and close the runs."""
        for seed, info in statuses.items():
            run_id = self.seed_runs[seed]
            _retry(
                lambda run_id=run_id, info=info: self.client.set_tag(
                    run_id, "status", info["status"]
                )
            )
            if info.get("params_sha256"):
                _retry(
                    lambda run_id=run_id, info=info: self.client.set_tag(
                        run_id, TAG_PARAMS_SHA256, info["params_sha256"]
                    )
                )
            if info.get("diverged_epoch") is not None:
                _retry(
                    lambda run_id=run_id, info=info: self.client.set_tag(
                        run_id, "diverged_epoch", str(info["diverged_epoch"])
                    )
                )
            _retry(lambda run_id=run_id: self.client.set_terminated(run_id, "FINISHED"))
        diverged = sum(info["status"] == "diverged" for info in statuses.values())
        _retry(lambda: self.client.set_tag(self.parent_id, "status", "finished"))
        _retry(lambda: self.client.set_tag(self.parent_id, "diverged_seeds", str(diverged)))
        for path in artifacts:
            _retry(lambda path=path: self.client.log_artifact(self.parent_id, str(path)))
        _retry(lambda: self.client.set_terminated(self.parent_id, "FINISHED"))
