"""Every MLflow call of relulab.

One parent run per grid point, one nested child run per (grid point, seed). Runs are found again
by their tags, so a job that is interrupted and run again continues its own runs instead of
creating duplicates, and epochs already logged are not logged twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from relulab.train import store

DEFAULT_URI = "sqlite:///results/mlflow.db"
TAG_POINT = "relulab.point"
TAG_SEED = "relulab.seed"
TAG_FINGERPRINT = "relulab.fingerprint"
TAG_ROLE = "relulab.role"
TAG_PARAMS_SHA256 = "relulab.params_sha256"
# Queued epoch metrics go to the store at most this often (and at the end of training): a
# store call costs about the same for 30 metrics as for 900, so per-epoch calls would dominate
# a short job, while a long job's progress still shows in the MLflow UI.
FLUSH_INTERVAL_S = 10.0
# Metrics per log_batch call (MLflow takes at most 1000 entities per call).
BATCH_METRICS = 900

T = TypeVar("T")


def tracking_uri(configured: str | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the config's ``tracking_uri``, else the default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or DEFAULT_URI


def _retry(call: Callable[[], T], attempts: int = 8) -> T:
    """Retry a store call that hit a transient lock (SQLite with several writers) or a server
    that does not answer (for at most ``tracking_timeout_s``): see ``store.retry``."""
    return store.retry(call, attempts)


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
    store.require_store(uri)
    experiment = _retry(lambda: _client(uri).get_experiment_by_name(name))
    if experiment is None:
        raise store.StoreLostError(
            f"MLflow experiment {name!r} does not exist at {uri}; run the workflow again "
            "(its rule init_tracking makes it; if the store was replaced, delete "
            "results/mlflow/experiment.json first)"
        )
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
    """The MLflow runs of one grid point: a parent run and one child run per seed.

    Epoch metrics are queued and sent at most once every ``FLUSH_INTERVAL_S`` (and by
    ``flush``/``finish``): each store call costs a transaction, whatever its size. Rows queued
    but not yet sent when the process dies are not lost: they are in the job's checkpoint, and
    the resumed job sends every epoch after the newest one MLflow holds.
    """

    def __init__(self, uri: str, experiment: str, point_id: str, fingerprint: str):
        self.uri = uri
        self.client = _client(uri)
        self.experiment_id = experiment_id(uri, experiment)
        self.point_id = point_id
        self.fingerprint = fingerprint
        self.parent_id: str | None = None
        self.seed_runs: dict[int, str] = {}
        # Per seed: the newest epoch MLflow holds, and the newest epoch queued (or held).
        self.logged_epochs: dict[int, int] = {}
        self.queued_epochs: dict[int, int] = {}
        # Per seed: the queued metrics, one list per epoch, epochs in ascending order.
        self.pending: dict[int, list[tuple[int, list]]] = {}
        self.last_flush = time.monotonic()

    def _point_runs(self) -> list:
        """Every run of this point and fingerprint (parent and seeds), newest first."""
        query = (
            f"tags.`{TAG_POINT}` = '{self.point_id}'"
            f" and tags.`{TAG_FINGERPRINT}` = '{self.fingerprint}'"
        )
        runs, token = [], None
        while True:
            page = _retry(
                lambda token=token: self.client.search_runs(
                    [self.experiment_id], query, max_results=1000, page_token=token
                )
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

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
        # One search for all runs of the point; where a run is duplicated, the newest counts.
        parent, existing = None, {}
        for run in self._point_runs():
            tags = run.data.tags
            if tags.get(TAG_ROLE) == "point":
                parent = parent or run
            elif tags.get(TAG_ROLE) == "seed" and TAG_SEED in tags:
                existing.setdefault(tags[TAG_SEED], run)
        if parent is None:
            self.parent_id = self._create(
                self.point_id, {**base_tags, TAG_ROLE: "point", "status": "running"}, flat
            )
        else:
            self.parent_id = parent.info.run_id
        for seed in seeds:
            run = existing.get(str(seed))
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
            self.queued_epochs[seed] = self.logged_epochs[seed]
            self.pending[seed] = []
            self.seed_runs[seed] = run_id
        self.last_flush = time.monotonic()

    def queue_rows(self, epoch_rows: list[dict], layer_rows: list[dict]) -> None:
        """Queue the per-epoch (and per-layer) metrics of the rows not yet queued or logged."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        new: dict[tuple[int, int], list] = {}
        for row in epoch_rows:
            seed, epoch = row["seed"], row["epoch"]
            if seed not in self.seed_runs or epoch <= self.queued_epochs[seed]:
                continue
            metrics = new.setdefault((seed, epoch), [])
            for key, value in row.items():
                if key not in ("seed", "epoch", "status", "step") and not isinstance(value, str):
                    metrics.append(Metric(key, float(value), now, epoch))
        for row in layer_rows:
            metrics = new.get((row["seed"], row["epoch"]))
            if metrics is None:
                continue
            for key, value in row.items():
                if key not in ("seed", "epoch", "layer"):
                    metrics.append(
                        Metric(f"layer{row['layer']}.{key}", float(value), now, row["epoch"])
                    )
        for (seed, epoch), metrics in sorted(new.items()):
            # val_accuracy goes last: its history marks the epochs that are fully logged.
            metrics.sort(key=lambda m: m.key == "val_accuracy")
            self.pending[seed].append((epoch, metrics))
            self.queued_epochs[seed] = epoch

    def log_rows(self, epoch_rows: list[dict], layer_rows: list[dict], force: bool = False) -> None:
        """Queue the new rows; send the queue when ``FLUSH_INTERVAL_S`` has passed, or ``force``."""
        self.queue_rows(epoch_rows, layer_rows)
        if force or time.monotonic() - self.last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def _send(self, seed: int, tags: list | None = None) -> None:
        """Send a seed's queued epochs (and ``tags``) in as few ``log_batch`` calls as fit.

        A call holds whole epochs, in order, so that a store that holds an epoch's
        val_accuracy holds every metric of it and of the epochs before it.
        """
        run_id, queue = self.seed_runs[seed], self.pending[seed]
        calls: list[tuple[int, list]] = []  # (newest epoch complete after the call, metrics)
        for epoch, metrics in queue:
            if calls and len(calls[-1][1]) + len(metrics) <= BATCH_METRICS:
                calls[-1] = (epoch, calls[-1][1] + metrics)
            else:
                # An epoch larger than one call is split; its val_accuracy goes in the last part.
                for start in range(0, len(metrics), BATCH_METRICS):
                    whole = start + BATCH_METRICS >= len(metrics)
                    calls.append(
                        (epoch if whole else epoch - 1, metrics[start : start + BATCH_METRICS])
                    )
        if tags and not calls:
            calls.append((self.logged_epochs[seed], []))
        for index, (epoch, metrics) in enumerate(calls):
            extra = (tags or []) if index == len(calls) - 1 else []
            _retry(
                lambda metrics=metrics, extra=extra: self.client.log_batch(
                    run_id, metrics=metrics, tags=extra
                )
            )
            self.logged_epochs[seed] = max(self.logged_epochs[seed], epoch)
        queue.clear()

    def flush(self) -> None:
        """Send every queued metric now."""
        for seed in self.seed_runs:
            if self.pending[seed]:
                self._send(seed)
        self.last_flush = time.monotonic()

    def finish(self, statuses: dict[int, dict], artifacts: Iterable[Path] = ()) -> None:
        """Send what is queued, tag each seed's final status, attach the point's files, and
        close the runs; a seed's last metrics and its tags go in one call."""
        from mlflow.entities import RunTag

        for seed in self.seed_runs:
            if seed not in statuses and self.pending[seed]:
                self._send(seed)
        for seed, info in statuses.items():
            run_id = self.seed_runs[seed]
            tags = [RunTag("status", info["status"])]
            if info.get("params_sha256"):
                tags.append(RunTag(TAG_PARAMS_SHA256, info["params_sha256"]))
            if info.get("diverged_epoch") is not None:
                tags.append(RunTag("diverged_epoch", str(info["diverged_epoch"])))
            self._send(seed, tags)
            _retry(lambda run_id=run_id: self.client.set_terminated(run_id, "FINISHED"))
        self.last_flush = time.monotonic()
        diverged = sum(info["status"] == "diverged" for info in statuses.values())
        parent_tags = [RunTag("status", "finished"), RunTag("diverged_seeds", str(diverged))]
        _retry(lambda: self.client.log_batch(self.parent_id, tags=parent_tags))
        for path in artifacts:
            _retry(lambda path=path: self.client.log_artifact(self.parent_id, str(path)))
        _retry(lambda: self.client.set_terminated(self.parent_id, "FINISHED"))
