"""Metrics written into an MLflow SQLite store's tables read back through MLflow as if logged by
MLflow's own ``log_batch``."""

from __future__ import annotations

import math
import sqlite3

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from relulab.train import sqlite_metrics, tracking


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
    tables = sqlite_metrics.MetricTables.open(tmp_path / "mlflow.db")
    assert tables is not None
    tables.log(direct, metrics()[:5])
    tables.log(direct, metrics()[5:])
    tables.log(direct, metrics()[5:])  # sent twice (a retried call): no new rows
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
    assert sqlite_metrics.MetricTables.open(tmp_path / "absent.db") is None
    assert not (tmp_path / "absent.db").exists()
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE metrics (key TEXT, value REAL)")
    assert sqlite_metrics.MetricTables.open(other) is None
