"""The MLflow runs of the grid points: one parent run per grid point, one nested child run per
(grid point, seed).

Runs are found again by their tags (``tracking_names``), so a job that is interrupted and run
again continues its own runs instead of creating duplicates, and epochs already logged are not
logged twice. The parent runs carry, per epoch, the mean over seeds and the bounds of its 95 %
interval of the main metrics (``seed_bands``), which the UI's shared view (``tracking_ui``)
opens on. The experiment and the study run are ``tracking_study``'s.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path

from relulab.colours import COLOURS, OTHER_COLOUR
from relulab.train import store
from relulab.train.rows import EPOCH_METRICS, LAYER_METRICS
from relulab.train.tracking_names import (
    BOUND,
    LOWER,
    PARENT_METRICS,
    TAG_CODE_VERSIONS,
    TAG_FINGERPRINT,
    TAG_GIT_COMMIT,
    TAG_NOTE,
    TAG_PARAMS_SHA256,
    TAG_PARENT,
    TAG_POINT,
    TAG_ROLE,
    TAG_RUN_COLOUR,
    TAG_SEED,
    TAG_STALE,
    TAG_SUPERSEDED,
    UPPER,
    layer_metric,
    overall_metric,
    point_description,
    seed_description,
)
from relulab.train.tracking_study import experiment_id

# Queued epoch metrics go to the store at most this often (and at the end of training): a
# store call costs about the same for 30 metrics as for 900, so per-epoch calls would dominate
# a short job, while a long job's progress still shows in the MLflow UI.
FLUSH_INTERVAL_S = 10.0
# Metrics per log_batch call: MLflow takes at most 1000 metrics and 1000 entities in all per
# call; the rest of a call's room is for the tags sent with a run's last metrics.
BATCH_METRICS = 900
# Params per log_batch call (MLflow's limit).
PARAMS_PER_BATCH = 100


def _flat(params: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


def seed_bands(epoch_rows: list[dict], metrics: Iterable[str] = PARENT_METRICS) -> dict:
    """Per epoch, each metric's mean over seeds and the bounds of its 95 % interval, clipped to
    the values the metric can take (``within_domain``).

    ``{epoch: {"val_accuracy": mean, "val_accuracy.ci95_low": ..., ...}}``. Values that are not
    finite (a diverged seed) are left out, as in the tables; with one finite value there is a
    mean but no bounds, with none there is nothing.
    """
    from relulab.tables.summary import mean_ci95

    by_epoch: dict[int, list[dict]] = {}
    for row in epoch_rows:
        by_epoch.setdefault(int(row["epoch"]), []).append(row)
    bands: dict[int, dict[str, float]] = {}
    for epoch, rows in sorted(by_epoch.items()):
        values: dict[str, float] = {}
        for metric in metrics:
            mean, half = mean_ci95([row[metric] for row in rows if metric in row])
            if math.isfinite(mean):
                values[metric] = mean
            if math.isfinite(half):
                low, high = within_domain(metric, mean - half, mean + half)
                values[f"{metric}{BOUND}{LOWER}"] = low
                values[f"{metric}{BOUND}{UPPER}"] = high
        bands[epoch] = values
    return bands


# The values a metric can take: a t interval around a mean near a bound crosses it (a loss
# bound of -2, a fraction above 1), which the chart would show as a value that cannot occur.
METRIC_DOMAINS = {
    "val_accuracy": (0.0, 1.0),
    "dead_fraction": (0.0, 1.0),
    "val_loss": (0.0, math.inf),
    "train_loss": (0.0, math.inf),
}


def within_domain(metric: str, low: float, high: float) -> tuple[float, float]:
    """An interval's bounds clipped to the values ``metric`` can take (``METRIC_DOMAINS``);
    fractions and accuracies stay in [0, 1], losses at or above 0; other metrics unchanged."""
    floor, ceiling = METRIC_DOMAINS.get(metric, (-math.inf, math.inf))
    return min(max(low, floor), ceiling), max(min(high, ceiling), floor)


def dataset_entity(name: str, path: str | Path, profile: dict | None = None):
    """The prepared data file as an MLflow dataset, its digest the file's SHA-256 (first 16)."""
    from mlflow.entities import Dataset

    path = Path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return Dataset(
        name=name,
        digest=digest,
        source_type="local",
        source=json.dumps({"uri": path.resolve().as_uri()}),
        profile=json.dumps(profile) if profile else None,
    )


class PointTracker:
    """The MLflow runs of one grid point: a parent run and one child run per seed.

    Epoch metrics are queued and sent at most once every ``FLUSH_INTERVAL_S`` (and by
    ``flush``/``finish``): each store call costs a transaction, whatever its size. Rows queued
    but not yet sent when the process dies are not lost: they are in the job's checkpoint, and
    the resumed job sends every epoch after the newest one MLflow holds.
    """

    def __init__(self, uri: str, experiment: str, point_id: str, fingerprint: str):
        self.uri = uri
        self.client = store.client(uri)
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
        # The parent run's seed bands: the newest epoch queued (or held), and the queue.
        self.parent_queued = -1
        self.parent_pending: list[tuple[int, list]] = []
        self.last_flush = time.monotonic()

    def _point_runs(self) -> list:
        """Every run of this point, of any fingerprint (parent and seeds), newest first."""
        query = f"tags.`{TAG_POINT}` = '{self.point_id}'"
        runs, token = [], None
        while True:
            page = store.retry(
                lambda token=token: self.client.search_runs(
                    [self.experiment_id], query, max_results=1000, page_token=token
                )
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _mark_stale(self, runs: list) -> None:
        """End ``runs`` (the point's runs of other fingerprints) that are still RUNNING (a job
        stopped before the settings changed) as KILLED, tagged ``relulab.stale``: the MLflow UI
        then shows one live run per point, and the old ones say why they stopped."""
        from mlflow.entities import RunTag

        note = f"settings changed: this point now trains as fingerprint {self.fingerprint}"
        for run in runs:
            if run.info.status != "RUNNING":
                continue
            run_id = run.info.run_id
            store.retry(
                lambda run_id=run_id: self.client.log_batch(run_id, tags=[RunTag(TAG_STALE, note)])
            )
            store.retry(lambda run_id=run_id: self.client.set_terminated(run_id, "KILLED"))

    def _create(self, name: str, tags: dict[str, str], params: dict[str, str], dataset) -> str:
        """A new run with its tags (in the same call: a run is always found again by them),
        params and dataset input."""
        from mlflow.entities import DatasetInput, InputTag, Param

        params = {k: v[:6000] for k, v in params.items()}
        run = store.retry(
            lambda: self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        )
        run_id = run.info.run_id
        batch = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(batch), PARAMS_PER_BATCH):
            chunk = batch[start : start + PARAMS_PER_BATCH]
            store.retry(lambda chunk=chunk: self.client.log_batch(run_id, params=chunk))
        if dataset is not None:
            used = DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])
            store.retry(lambda: self.client.log_inputs(run_id, datasets=[used]))
        return run_id

    def start(
        self,
        params: dict,
        seeds: Iterable[int],
        provenance: dict | None = None,
        name: str | None = None,
        dataset=None,
    ) -> None:
        """Find or create the runs, and note which epochs they already hold.

        ``name`` is the parent run's name (``run_name``; the point id when None); ``dataset``
        an MLflow dataset (``dataset_entity``) logged as every new run's input.
        """
        seeds = list(seeds)
        name = name or self.point_id
        base_tags = {TAG_POINT: self.point_id, TAG_FINGERPRINT: self.fingerprint}
        base_tags.update({f"relulab.{k}": str(v) for k, v in (provenance or {}).items()})
        commit = (provenance or {}).get("git_commit", "")
        if len(commit) == 40:  # not "uncommitted"
            base_tags[TAG_GIT_COMMIT] = commit
        flat = _flat(params)
        colour = COLOURS.get(str(params.get("activation")), OTHER_COLOUR)
        base_tags[TAG_RUN_COLOUR] = colour  # the activation's colour in every figure
        # One search for all runs of the point; where a run is duplicated, the newest counts.
        parent, existing, others = None, {}, []
        for run in self._point_runs():
            tags = run.data.tags
            if tags.get(TAG_FINGERPRINT) != self.fingerprint:
                others.append(run)
            elif tags.get(TAG_ROLE) == "point":
                parent = parent or run
            elif tags.get(TAG_ROLE) == "seed" and TAG_SEED in tags:
                existing.setdefault(tags[TAG_SEED], run)
        if parent is None:
            self._mark_stale(others)
            tags = {
                **base_tags,
                TAG_ROLE: "point",
                "status": "running",
                TAG_NOTE: point_description(name, self.point_id, len(seeds)),
            }
            self.parent_id = self._create(name, tags, flat, dataset)
            self.parent_queued = -1
        else:
            self.parent_id = parent.info.run_id
            history = store.retry(
                lambda: self.client.get_metric_history(
                    self.parent_id, overall_metric(PARENT_METRICS[0])
                )
            )
            self.parent_queued = max((m.step for m in history), default=-1)
        self.parent_pending = []
        for seed in seeds:
            run = existing.get(str(seed))
            if run is None:
                tags = {
                    **base_tags,
                    TAG_ROLE: "seed",
                    TAG_SEED: str(seed),
                    TAG_PARENT: self.parent_id,
                    "status": "running",
                    TAG_NOTE: seed_description(name, seed),
                }
                run_id = self._create(
                    f"seed {seed} · {name}", tags, {**flat, "seed": str(seed)}, dataset
                )
                self.logged_epochs[seed] = -1
            else:
                run_id = run.info.run_id
                history = store.retry(
                    lambda run_id=run_id: self.client.get_metric_history(
                        run_id, overall_metric("val_accuracy")
                    )
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
            for key in EPOCH_METRICS:
                if key in row:
                    metrics.append(Metric(overall_metric(key), float(row[key]), now, epoch))
        for row in layer_rows:
            metrics = new.get((row["seed"], row["epoch"]))
            if metrics is None:
                continue
            for key in LAYER_METRICS:
                if key in row:
                    metrics.append(
                        Metric(layer_metric(row["layer"], key), float(row[key]), now, row["epoch"])
                    )
        for (seed, epoch), metrics in sorted(new.items()):
            # val_accuracy goes last: its history marks the epochs that are fully logged.
            metrics.sort(key=lambda m: m.key == overall_metric("val_accuracy"))
            self.pending[seed].append((epoch, metrics))
            self.queued_epochs[seed] = epoch
        self._queue_bands(epoch_rows, now)

    def _queue_bands(self, epoch_rows: list[dict], now: int) -> None:
        """Queue the parent's seed bands of the epochs every seed has finished.

        Seeds train in step, so every epoch up to the newest row is complete (a diverged
        seed has no rows after its divergence).
        """
        from mlflow.entities import Metric

        ours = [row for row in epoch_rows if row["seed"] in self.seed_runs]
        fresh = [row for row in ours if row["epoch"] > self.parent_queued]
        if not fresh:
            return
        for epoch, values in seed_bands(fresh).items():
            # The mean of PARENT_METRICS[0] goes last: its history marks the epochs logged.
            keys = sorted(values, key=lambda key: key == PARENT_METRICS[0])
            self.parent_pending.append(
                (epoch, [Metric(overall_metric(k), values[k], now, epoch) for k in keys])
            )
            self.parent_queued = max(self.parent_queued, epoch)

    def _send_parent(self, tags: dict[str, str] | None = None, status: str | None = None) -> None:
        """Send the parent's queued seed bands and ``tags`` (and end it with ``status``)."""
        for _ in self._send_queue(self.parent_id, self.parent_pending, tags, status):
            pass

    def log_rows(self, epoch_rows: list[dict], layer_rows: list[dict], force: bool = False) -> None:
        """Queue the new rows; send the queue when ``FLUSH_INTERVAL_S`` has passed, or ``force``."""
        self.queue_rows(epoch_rows, layer_rows)
        if force or time.monotonic() - self.last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def _send(
        self, seed: int, tags: dict[str, str] | None = None, status: str | None = None
    ) -> None:
        """Send a seed's queued epochs (and ``tags``, and ``status`` that ends the run) in as
        few calls as fit."""
        run_id = self.seed_runs[seed]
        for epoch in self._send_queue(run_id, self.pending[seed], tags, status):
            self.logged_epochs[seed] = max(self.logged_epochs[seed], epoch)

    def _send_queue(
        self,
        run_id: str,
        queue: list[tuple[int, list]],
        tags: dict[str, str] | None,
        status: str | None = None,
    ):
        """Send ``queue`` (epochs in order, each with its metrics) and ``tags`` to ``run_id``,
        then end the run with ``status`` (e.g. "FINISHED") if given.

        A call holds whole epochs, in order, so that a store that holds an epoch's last metric
        (the one whose history marks logged epochs) holds every metric of it and of the epochs
        before it. The tags go with the last call's metrics, then the status ends the run
        (``set_terminated``). Yields, after each call,
        the newest epoch the store now holds whole.
        """
        from mlflow.entities import RunTag

        calls: list[tuple[int, list]] = []  # (newest epoch complete after the call, metrics)
        for epoch, metrics in queue:
            if calls and len(calls[-1][1]) + len(metrics) <= BATCH_METRICS:
                calls[-1] = (epoch, calls[-1][1] + metrics)
            else:
                # An epoch larger than one call is split; its marker goes in the last part.
                for start in range(0, len(metrics), BATCH_METRICS):
                    whole = start + BATCH_METRICS >= len(metrics)
                    calls.append(
                        (epoch if whole else epoch - 1, metrics[start : start + BATCH_METRICS])
                    )
        if (tags or status) and not calls:
            calls.append((-1, []))
        for index, (epoch, metrics) in enumerate(calls):
            last = index == len(calls) - 1
            extra = (tags or {}) if last else {}
            ending = status if last else None
            if metrics or extra:
                batch = [RunTag(k, v) for k, v in extra.items()]
                store.retry(
                    lambda metrics=metrics, batch=batch: self.client.log_batch(
                        run_id, metrics=metrics, tags=batch
                    )
                )
            if ending:
                store.retry(lambda ending=ending: self.client.set_terminated(run_id, ending))
            yield epoch
        queue.clear()

    def flush(self) -> None:
        """Send every queued metric now."""
        for seed in self.seed_runs:
            if self.pending[seed]:
                self._send(seed)
        if self.parent_pending:
            self._send_parent()
        self.last_flush = time.monotonic()

    def finish(self, statuses: dict[int, dict], artifacts: Iterable[Path] = ()) -> None:
        """Send what is queued, tag each seed's final status, attach the point's files, and
        close the runs; a run's last metrics, its tags and its end go in one call."""
        for seed in self.seed_runs:
            if seed not in statuses and self.pending[seed]:
                self._send(seed)
        for seed, info in statuses.items():
            tags = {"status": info["status"]}
            if info.get("params_sha256"):
                tags[TAG_PARAMS_SHA256] = info["params_sha256"]
            if info.get("diverged_epoch") is not None:
                tags["diverged_epoch"] = str(info["diverged_epoch"])
            self._send(seed, tags, status="FINISHED")
        self.last_flush = time.monotonic()
        for path in artifacts:
            store.retry(lambda path=path: self.client.log_artifact(self.parent_id, str(path)))
        diverged = sum(info["status"] == "diverged" for info in statuses.values())
        parent_tags = {"status": "finished", "diverged_seeds": str(diverged)}
        self._send_parent(parent_tags, status="FINISHED")


def refresh_provenance(client, run_ids: Iterable[str], provenance: dict) -> None:
    """Name on each run the code and libraries that run now (a resumed job's), and append
    the code version to the run's ``TAG_CODE_VERSIONS`` when it is new to the run."""
    from mlflow.entities import RunTag

    version = str(provenance.get("code_sha256", ""))
    commit = str(provenance.get("git_commit", ""))
    for run_id in run_ids:
        tags = store.retry(lambda run_id=run_id: client.get_run(run_id)).data.tags
        versions = [v for v in tags.get(TAG_CODE_VERSIONS, "").split(",") if v]
        if version and version not in versions[-1:]:
            versions.append(version)
        batch = [RunTag(f"relulab.{k}", str(v)) for k, v in provenance.items()]
        batch.append(RunTag(TAG_CODE_VERSIONS, ",".join(versions)))
        if len(commit) == 40:
            batch.append(RunTag(TAG_GIT_COMMIT, commit))
        store.retry(lambda run_id=run_id, batch=batch: client.log_batch(run_id, tags=batch))


def retire_point_runs(uri: str, experiment: str, point_id: str, fingerprint: str, why: str) -> int:
    """End the runs of a point whose networks are not trained on (role ``superseded``,
    ``TAG_SUPERSEDED`` saying ``why``, status KILLED), so that the next ``PointTracker.start``
    creates new ones and the UI shows one live point. Returns how many runs were retired."""
    from mlflow.entities import RunTag

    client = store.client(uri)
    query = f"tags.`{TAG_POINT}` = '{point_id}' and tags.`{TAG_FINGERPRINT}` = '{fingerprint}'"
    found = store.retry(
        lambda: client.search_runs([experiment_id(uri, experiment)], query, max_results=1000)
    )
    runs = [run for run in found if run.data.tags.get(TAG_ROLE) in ("point", "seed")]
    for run in runs:
        run_id = run.info.run_id
        tags = [RunTag(TAG_ROLE, "superseded"), RunTag(TAG_SUPERSEDED, why)]
        store.retry(lambda run_id=run_id, tags=tags: client.log_batch(run_id, tags=tags))
        if run.info.status == "RUNNING":
            store.retry(lambda run_id=run_id: client.set_terminated(run_id, "KILLED"))
    return len(runs)
