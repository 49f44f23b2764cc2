"""A lost or partly filled MLflow store made whole again from the study's own files.

Every finished grid point keeps its whole record in ``results/runs/<point>/`` (``epochs.csv``,
``layers.csv``, ``point.json``), so when the SQLite store is deleted its runs can be sent to a
new store without training anything again: the same parent and seed runs, parameters, per-epoch
metrics, status tags and files, found by the same tags. The study run is sent again from
``results/mlflow/study.json``, which lists its files.

The rebuild is a step of its own (the workflow's rules ``init_tracking`` and ``rebuild_store``),
never part of parsing the workflow, and it can be interrupted at any moment: a marker
(``pending_marker``) is written before the first run is sent and removed after the last point is
verified, and the workflow runs the rebuild again while the marker is there. Each finished point
is verified against its files (``point_complete``: runs, params, status, metric histories); one
whose runs are missing or incomplete has them deleted (MLflow's ``delete_run``) and sent again
whole, so that an interrupted re-send never leaves half a point.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from relulab.study import settings
from relulab.study.grid import Point, is_finished
from relulab.study.settings import Study
from relulab.train import store, tracking, tracking_names, tracking_study

log = logging.getLogger(__name__)


@dataclass
class PointRecord:
    """What a finished point's files say its runs must hold."""

    summary: dict
    epochs: pd.DataFrame
    layers: pd.DataFrame

    @classmethod
    def read(cls, out_dir: Path) -> PointRecord | None:
        try:
            summary = json.loads((out_dir / "point.json").read_text())
            epochs = pd.read_csv(out_dir / "epochs.csv")
            layers = pd.read_csv(out_dir / "layers.csv")
        except (OSError, ValueError):
            return None
        return cls(summary, epochs, layers)


@dataclass
class Rebuild:
    """What a rebuild found and did, point by point."""

    verified: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    study_run: str = "absent"
    # The runs each re-sent point now has (its point.json names those it was trained with).
    runs: dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _same(a: float, b: float) -> bool:
    """Equal as MLflow returns them: NaN stored as NaN, infinities as the largest float."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or (math.isinf(b) and abs(a) >= 1.7e308 and (a > 0) == (b > 0))


def _point_runs(client, experiment_id: str, point_id: str, point_fingerprint: str) -> list:
    query = (
        f"tags.`{tracking_names.TAG_POINT}` = '{point_id}'"
        f" and tags.`{tracking_names.TAG_FINGERPRINT}` = '{point_fingerprint}'"
    )
    return store.retry(lambda: client.search_runs([experiment_id], query, max_results=1000))


def point_complete(client, experiment_id: str, point: Point, study: Study, record) -> bool:
    """Whether the store holds ``point``'s runs whole, as its files describe them.

    One finished parent and one finished run per seed, found by the point's tags; every
    parameter the point's runs carry; each seed's ``all/val_accuracy`` history equal to its
    epochs.csv column ``val_accuracy`` (its value marks an epoch whose metrics were all sent,
    since a call holds whole epochs with it last) and each overall metric's latest value equal
    to the seed's last row; the parent's seed bands for every epoch.
    """
    from relulab.train.job import tracking_params

    runs = _point_runs(client, experiment_id, point.id, record.summary["fingerprint"])
    parents = [r for r in runs if r.data.tags.get(tracking_names.TAG_ROLE) == "point"]
    seeds = {
        r.data.tags.get(tracking_names.TAG_SEED): r
        for r in runs
        if r.data.tags.get(tracking_names.TAG_ROLE) == "seed"
    }
    expected_seeds = sorted(record.summary["seeds"])
    if len(parents) != 1 or sorted(seeds) != expected_seeds or len(runs) != len(seeds) + 1:
        return False
    params = {k: v[:6000] for k, v in tracking._flat(tracking_params(point, study)).items()}
    if any(run.info.status != "FINISHED" for run in runs):
        return False
    if parents[0].data.params != params:
        return False
    epochs = record.epochs
    for seed, run in seeds.items():
        if run.data.params != {**params, "seed": seed}:
            return False
        rows = epochs[epochs.seed == int(seed)].sort_values("epoch")
        history = store.retry(
            lambda run=run: client.get_metric_history(
                run.info.run_id, tracking_names.overall_metric("val_accuracy")
            )
        )
        logged = sorted((m.step, m.value) for m in history)
        wanted = list(zip(rows.epoch.astype(int), rows.val_accuracy.astype(float), strict=True))
        if len(logged) != len(wanted) or not all(
            step == epoch and _same(value, target)
            for (step, value), (epoch, target) in zip(logged, wanted, strict=True)
        ):
            return False
        last = rows.iloc[-1] if len(rows) else pd.Series(dtype=object)
        for column, target in last.items():
            value = run.data.metrics.get(tracking_names.overall_metric(column))
            if value is not None and not _same(value, float(target)):
                return False
    parent_history = store.retry(
        lambda: client.get_metric_history(
            parents[0].info.run_id, tracking_names.overall_metric(tracking_names.PARENT_METRICS[0])
        )
    )
    return sorted({m.step for m in parent_history}) == sorted(set(epochs.epoch.astype(int)))


def resend_point(point: Point, study: Study, record: PointRecord, out_dir: Path, uri: str) -> dict:
    """Send one finished point's runs from its files (named as training names them); returns
    their ids."""
    from relulab.train.job import tracking_params, varying_axes

    point_fingerprint = record.summary["fingerprint"]
    tracker = tracking.PointTracker(uri, study.tracking.experiment, point.id, point_fingerprint)
    seeds = [int(seed) for seed in record.summary["seeds"]]
    tracker.start(
        tracking_params(point, study),
        seeds,
        {"resent_from": "csv"},
        name=tracking_names.run_name(point.params(), varying_axes(study)),
    )
    as_int = {"seed": int, "epoch": int}
    tracker.queue_rows(
        record.epochs.astype(as_int).to_dict("records"),
        record.layers.astype({**as_int, "layer": int}).to_dict("records"),
    )
    statuses = {int(seed): info for seed, info in record.summary["seeds"].items()}
    tracker.finish(statuses, [out_dir / "epochs.csv", out_dir / "layers.csv"])
    return {
        "parent_run_id": tracker.parent_id,
        "seed_run_ids": {str(s): r for s, r in tracker.seed_runs.items()},
    }


def _resend_study_run(uri: str, study: Study, study_marker: Path) -> str:
    """Send the study run again from ``study.json``'s list of files, if it has one."""
    try:
        sent = json.loads(study_marker.read_text())
    except (OSError, ValueError):
        return "absent"
    artifacts = sent.get("artifacts")
    if artifacts is None:
        return "not listed in study.json: run `snakemake -R track_study` to send it again"
    client = store.client(uri)
    experiment = tracking_study.experiment_id(uri, study.tracking.experiment)
    query = f"tags.`{tracking_names.TAG_ROLE}` = 'study'"
    found = store.retry(lambda: client.search_runs([experiment], query, max_results=1))
    if found and found[0].info.status == "FINISHED":
        return "verified"
    files = {
        folder: [Path(path) for path in paths if Path(path).exists()]
        for folder, paths in artifacts.items()
    }
    tracking_study.log_study(
        uri, study.tracking.experiment, files, sent.get("config", ""), sent.get("provenance")
    )
    return "resent"


def rebuild(
    uri: str,
    study: Study | dict,
    points: list[Point],
    results: str | Path = "results",
    artifact_root: str | Path | None = None,
) -> Rebuild:
    """Make the study's store whole: the experiment, then every finished point verified against
    its files and re-sent where its runs are missing or incomplete, then the study run.

    Runs under the store's lock (two processes never rebuild one store at once). The pending
    marker is written before anything is sent and removed when every point is verified, so an
    interrupted rebuild is finished by the next run of the workflow.
    """
    study = settings.of(study)
    results = Path(results)
    runs_dir = results / "runs"
    artifact_root = results / "mlartifacts" if artifact_root is None else artifact_root
    result = Rebuild()
    with store.store_lock(uri):
        pending = store.pending_marker(results)
        pending.parent.mkdir(parents=True, exist_ok=True)
        pending.write_text("a rebuild of the MLflow store from results/runs/ is under way\n")
        tracking_study.ensure_experiment(uri, study.tracking.experiment, artifact_root)
        client = store.client(uri)
        experiment = tracking_study.experiment_id(uri, study.tracking.experiment)
        for point in points:
            out_dir = runs_dir / point.id
            record = PointRecord.read(out_dir) if is_finished(point, study, out_dir) else None
            if record is None:
                result.skipped.append(point.id)
                continue
            if point_complete(client, experiment, point, study, record):
                result.verified.append(point.id)
                continue
            for run in _point_runs(client, experiment, point.id, record.summary["fingerprint"]):
                store.retry(lambda run=run: client.delete_run(run.info.run_id))
            result.runs[point.id] = resend_point(point, study, record, out_dir, uri)
            result.resent.append(point.id)
            log.info("re-sent %s from %s", point.id, out_dir)
        result.study_run = _resend_study_run(uri, study, results / "mlflow" / "study.json")
        pending.unlink(missing_ok=True)
    log.info(
        "MLflow store %s: %d point(s) verified, %d re-sent from %s, study run %s",
        uri,
        len(result.verified),
        len(result.resent),
        runs_dir,
        result.study_run,
    )
    return result
