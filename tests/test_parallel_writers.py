"""Many training jobs writing to one SQLite MLflow store at once lose nothing and never lock.

The store and the experiment are created once, by rule init_tracking, before any training job
starts; training jobs never create tables or run migrations.
"""

from __future__ import annotations

import multiprocessing

import pytest
import yaml
from helpers.mlflow_writer import write_point
from helpers.workflow import (
    check_mlflow_runs,
    scratch_copy,
    snakemake,
    study_config,
    training_targets,
)
from mlflow.tracking import MlflowClient

from relulab.study import grid
from relulab.train import tracking_study

pytestmark = pytest.mark.slow

# Eight grid points of a tiny model: the jobs spend their time talking to MLflow.
CONFIG = {
    "study": "relulab-parallel",
    "dataset": "mnist1d",
    "activation": ["relu", "leaky_relu", "prelu", "rrelu"],
    "zero_grad": [0.0, 1.0],
    "lr": [0.1],
    "model": {"width": 8, "depth": 1, "batch_norm": False},
    "training": {
        "optimizer": "sgd",
        "epochs": 2,
        "batch_size": 256,
        "precision": "float32",
        "seeds": 2,
    },
}
# The test study replaces the default one: nothing of the default study merges in.
CONFIG_FILE = "config/config.yaml"
LOCK_WORDS = ("database is locked", "database table is locked", "OperationalError")


def assert_every_metric_every_epoch(uri: str, study: str, epochs: int) -> int:
    """Each seed run holds each of its metrics exactly once per epoch; returns the run count."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    seed_runs = [r for r in runs if r.data.tags["relulab.role"] == "seed"]
    for run in seed_runs:
        assert run.info.status == "FINISHED"
        for key in run.data.metrics:
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(epochs + 1)), (run.data.tags["relulab.point"], key)
    return len(seed_runs)


def test_four_cores_eight_jobs_one_sqlite_store(tmp_path):
    workdir = scratch_copy(tmp_path / "study")
    (workdir / CONFIG_FILE).write_text(yaml.safe_dump(CONFIG))
    config = study_config(workdir, CONFIG_FILE)
    points = grid.by_id(config)
    assert len(points) >= 8
    targets = training_targets(config)
    result = snakemake(workdir, *targets, "--cores", "4")

    uri = f"sqlite:///{workdir}/results/mlflow.db"
    check_mlflow_runs(uri, config)
    count = assert_every_metric_every_epoch(uri, config["study"], config["training"]["epochs"])
    assert count == len(points) * 2
    texts = {"snakemake": result.stdout + result.stderr}
    texts |= {p.name: p.read_text() for p in (workdir / "results" / "logs").rglob("*.log")}
    for name, text in texts.items():
        for word in LOCK_WORDS:
            assert word not in text, f"{name}: {word}"
    creators = [name for name, text in texts.items() if "Creating initial MLflow database" in text]
    assert creators == ["init_tracking.log"], "only init_tracking creates the store"


WRITERS = 8
EPOCHS = 12


def test_eight_simultaneous_writers_on_one_sqlite_store(tmp_path):
    """Eight processes released at the same instant, each creating runs and logging epochs."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    study = "relulab-writers"
    tracking_study.ensure_experiment(uri, study, tmp_path / "mlartifacts")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WRITERS, timeout=300)
    log_paths = [tmp_path / f"writer{i}.log" for i in range(WRITERS)]
    workers = [
        context.Process(target=write_point, args=(uri, study, i, EPOCHS, start, str(log_paths[i])))
        for i in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
    assert [w.exitcode for w in workers] == [0] * WRITERS, [
        p.read_text() for p in log_paths if p.exists()
    ]

    assert assert_every_metric_every_epoch(uri, study, EPOCHS) == WRITERS * 2
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags["relulab.role"] == "point"]
    assert sorted(r.data.tags["relulab.point"] for r in parents) == sorted(
        f"point{i}" for i in range(WRITERS)
    )
    for path in log_paths:
        text = path.read_text()
        for word in LOCK_WORDS + ("Creating initial MLflow database",):
            assert word not in text, f"{path.name}: {word}"
