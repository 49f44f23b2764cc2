"""Jobs that start at the same moment log the same dataset without failing.

MLflow's ``log_inputs`` looks a dataset up and then inserts it, so two jobs that log the same
data file at the same moment can both insert it and the second one hits the store's unique key
(``UNIQUE constraint failed: datasets...``). The store calls retry that collision: the retry
finds the row the first job committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import mlflow_server
from mlflow.tracking import MlflowClient

from relulab.train import store, tracking_study

STUDY = "relulab-race"

START_AT_THE_SAME_MOMENT = """
import sys, time
from relulab.train import tracking
uri, study, job, first_start, *data = sys.argv[1:]
for round, path in enumerate(data):  # each round a new data file: a dataset no job logged yet
    dataset = tracking.dataset_entity("mnist1d", path)
    tracker = tracking.PointTracker(uri, study, f"point{job}-{round}", "fingerprint")
    while time.time() < float(first_start) + 2 * round:
        pass
    tracker.start({"lr": 0.1}, [0], dataset=dataset)
"""


def test_an_insert_race_on_a_dataset_is_retried_and_other_errors_are_not():
    calls = []

    def collides_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(
                "BAD_REQUEST: (sqlite3.IntegrityError) UNIQUE constraint failed: "
                "datasets.experiment_id, datasets.name, datasets.digest"
            )
        return "found"

    assert store.retry(collides_once) == "found"
    assert len(calls) == 2

    def other_unique_key():
        raise RuntimeError("UNIQUE constraint failed: experiments.name")

    with pytest.raises(RuntimeError, match="experiments.name"):
        store.retry(other_unique_key)


def race(uri: str, folder: Path, jobs: int = 4, rounds: int = 4) -> None:
    """``jobs`` processes that, in each of ``rounds`` rounds, start a point's runs at the same
    moment with one new data file as their dataset."""
    data = []
    for round in range(rounds):
        data.append(folder / f"mnist1d-{round}.npz")
        np.savez(data[-1], x=np.arange(40.0) + round)
    first_start = time.time() + 10  # every process has imported MLflow by then
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", START_AT_THE_SAME_MOMENT, uri, STUDY, str(job)]
            + [str(first_start), *map(str, data)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in range(jobs)
    ]
    failures = [p.stderr.read()[-2000:] for p in processes if p.wait(timeout=300) != 0]
    assert not failures, failures
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    assert len(runs) == jobs * rounds * 2  # a parent and one seed per job and round
    for run in runs:
        assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["mnist1d"]


def test_jobs_starting_together_all_log_the_dataset_to_sqlite(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking_study.ensure_experiment(uri, STUDY, tmp_path / "artifacts")
    race(uri, tmp_path)


@pytest.mark.slow
def test_jobs_starting_together_all_log_the_dataset_to_a_server(tmp_path: Path):
    port = mlflow_server.free_port()
    server = mlflow_server.launch(tmp_path, port, tmp_path / "server.log")
    try:
        uri = f"http://127.0.0.1:{port}"
        mlflow_server.wait_until_up(uri, server)
        tracking_study.ensure_experiment(uri, STUDY)
        race(uri, tmp_path)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
