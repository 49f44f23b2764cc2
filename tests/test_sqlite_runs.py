"""Runs, params, tags and metrics written into an MLflow SQLite store's tables read back through
MLflow as if created and logged by MLflow's own calls."""

from __future__ import annotations

import math
import sqlite3

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from relulab.train import sqlite_runs, tracking


def metrics() -> list[Metric]:
    values = [
        ("loss", 2.5, 1000, 0),
        ("loss", 1.5, 1001, 1),
        ("loss", 1.5, 1001, 1),  # a duplicate: stored once
        ("loss", 1.75, 999, 3),  # newest step, older timestamp: the latest value
        ("loss", 0.5, 1002, 2),
        ("layer1.dead", math.nan, 1000, 0),
        ("layer1.dead", math.inf, 1001, 1),
        ("layer1.dead", -math.inf, 1001, 1),
        ("grad", 1e-30, 1000, 5),
        ("grad", 3.0, 1000, 5),  # same step and timestamp: the larger value is the latest
    ]
    return [Metric(key, value, timestamp, step) for key, value, timestamp, step in values]


def test_direct_rows_read_back_as_log_batch_rows(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = tracking.ensure_experiment(uri, "rows", tmp_path / "artifacts")
    client = MlflowClient(uri)
    by_mlflow = client.create_run(experiment).info.run_id
    direct = client.create_run(experiment).info.run_id
    client.log_batch(by_mlflow, metrics=metrics()[:5])
    client.log_batch(by_mlflow, metrics=metrics()[5:])
    tables = sqlite_runs.RunTables.open(tmp_path / "mlflow.db")
    assert tables is not None
    tables.write(direct, metrics()[:5])
    tables.write(direct, metrics()[5:])
    tables.write(direct, metrics()[5:])  # sent twice (a retried call): no new rows
    for key in ("loss", "layer1.dead", "grad"):
        ours = sorted(
            (m.step, m.timestamp, str(m.value)) for m in client.get_metric_history(direct, key)
        )
        theirs = sorted(
            (m.step, m.timestamp, str(m.value)) for m in client.get_metric_history(by_mlflow, key)
        )
        assert ours == theirs, key
    latest = client.get_run(direct).data.metrics
    assert latest == client.get_run(by_mlflow).data.metrics
    assert latest["loss"] == 1.75 and latest["grad"] == 3.0


def test_unknown_tables_or_a_missing_store_keep_mlflow_s_own_path(tmp_path):
    assert sqlite_runs.RunTables.open(tmp_path / "absent.db") is None
    assert not (tmp_path / "absent.db").exists()
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE metrics (key TEXT, value REAL)")
    assert sqlite_runs.RunTables.open(other) is None


TAGS = {
    tracking.TAG_POINT: "relu_zg0_lr0.01",
    tracking.TAG_ROLE: "seed",
    tracking.TAG_NOTE: "a note " + "x" * 9000,  # longer than MLflow's limit: truncated alike
    "mlflow.user": "someone",
}
PARAMS = {"activation": "relu", "lr": "0.01", "long": "y" * 7000}


def comparable(run) -> dict:
    """What MLflow reads of a run, less what differs between any two runs (ids, times)."""
    info = run.info
    return {
        "name": info.run_name,
        "status": info.status,
        "user": info.user_id,
        "stage": info.lifecycle_stage,
        "artifacts": info.artifact_uri.replace(info.run_id, "<id>"),
        "ended": info.end_time is not None,
        "tags": run.data.tags,
        "params": run.data.params,
        "metrics": run.data.metrics,
    }


def test_runs_created_and_ended_directly_read_back_as_mlflow_s_own(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = tracking.ensure_experiment(uri, "runs", tmp_path / "artifacts")
    client = MlflowClient(uri)
    tables = sqlite_runs.RunTables.open(tmp_path / "mlflow.db")
    assert tables is not None
    theirs = client.create_run(experiment, run_name="seed 0 · relu", tags=TAGS).info.run_id
    client.log_batch(theirs, params=[Param(k, v[:6000]) for k, v in PARAMS.items()])
    ours = tables.create_run(experiment, "seed 0 · relu", TAGS, PARAMS)
    assert comparable(client.get_run(ours)) == comparable(client.get_run(theirs))
    query = f"tags.`{tracking.TAG_POINT}` = 'relu_zg0_lr0.01' and params.lr = '0.01'"
    assert {r.info.run_id for r in client.search_runs([experiment], query)} == {ours, theirs}

    # The end of a run: its last metrics, a changed and a new tag, FINISHED.
    client.log_batch(theirs, metrics=metrics()[:5], tags=[RunTag("status", "ok")])
    client.set_terminated(theirs, "FINISHED")
    tables.write(ours, metrics()[:5], tags={"status": "ok"}, status="FINISHED")
    for run in (theirs, ours):  # a tag set again takes its new value
        client.set_tag(run, tracking.TAG_ROLE, "point")
    tables.write(ours, tags={tracking.TAG_ROLE: "point"})
    assert comparable(client.get_run(ours)) == comparable(client.get_run(theirs))
    assert client.get_run(ours).info.status == "FINISHED"


def test_a_deleted_run_or_experiment_is_refused_as_mlflow_refuses_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = tracking.ensure_experiment(uri, "gone", tmp_path / "artifacts")
    client = MlflowClient(uri)
    tables = sqlite_runs.RunTables.open(tmp_path / "mlflow.db")
    run = tables.create_run(experiment, "run", {})
    client.delete_run(run)
    with pytest.raises(sqlite_runs.InactiveError):
        tables.write(run, metrics()[:1])
    assert client.get_metric_history(run, "loss") == []
    client.delete_experiment(experiment)
    with pytest.raises(sqlite_runs.InactiveError):
        tables.create_run(experiment, "run", {})
    with pytest.raises(ValueError, match="runName"):
        tables.write(run, tags={"mlflow.runName": "renamed"})
