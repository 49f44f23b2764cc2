"""The smoke study logged to a real ``mlflow server`` on loopback, checked over its REST API.

The server runs as the README's "Tracking server" section says: the study's SQLite store,
artifacts served by the server itself, bound to 127.0.0.1. Every run, every epoch, the point's
files and each run's provenance are read back through plain HTTP, as any other client would.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from helpers import mlflow_server
from helpers.workflow import scratch_copy, snakemake, study_config, training_targets

from relulab.study import config as cfg
from relulab.study import grid

pytestmark = pytest.mark.slow

PROVENANCE = {
    "python": platform.python_version(),
    **{name: importlib.metadata.version(name) for name in ("torch", "lightning", "mlflow")},
    "snakemake": importlib.metadata.version("snakemake"),
}


class Server:
    """``mlflow server`` on the study's store, bound to 127.0.0.1."""

    def __init__(self, workdir: Path):
        self.port = mlflow_server.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = mlflow_server.launch(workdir, self.port, workdir / "mlflow-server.log")

    def wait_until_up(self) -> None:
        mlflow_server.wait_until_up(self.url, self.process)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def get(self, path: str, **query) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def download(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:
            return response.read()


@pytest.fixture(scope="module")
def served_study(tmp_path_factory):
    workdir = scratch_copy(tmp_path_factory.mktemp("served"))
    # The smoke study alone, as the study of this copy: nothing of the default study merges in.
    shutil.copy(workdir / "config" / "smoke.yaml", workdir / "config" / "config.yaml")
    # The training jobs are what talks to MLflow; the study's other rules are tested elsewhere.
    targets = training_targets(study_config(workdir))
    server = Server(workdir)
    try:
        server.wait_until_up()
        snakemake(
            workdir,
            *targets,
            "--cores",
            "2",
            "--config",
            f"tracking_uri={server.url}",
        )
        yield workdir, server
    finally:
        server.stop()


def tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def search_runs(server: Server, experiment_id: str) -> list[dict]:
    runs, token = [], None
    while True:
        body = {"experiment_ids": [experiment_id], "max_results": 500}
        if token:
            body["page_token"] = token
        page = server.post("/api/2.0/mlflow/runs/search", body)
        runs += page.get("runs", [])
        token = page.get("next_page_token")
        if not token:
            return runs


def history(server: Server, run_id: str, key: str) -> list[dict]:
    found = server.get("/api/2.0/mlflow/metrics/get-history", run_id=run_id, metric_key=key)
    return found.get("metrics", [])


def test_server_holds_every_run_epoch_file_and_provenance(served_study):
    workdir, server = served_study
    config = study_config(workdir)
    points = {p.id for p in grid.expand(config)}
    seeds = {str(s) for s in cfg.seeds(config)}
    epochs = config["training"]["epochs"]

    experiment = server.get(
        "/api/2.0/mlflow/experiments/get-by-name", experiment_name=config["study"]
    )["experiment"]
    # Artifacts go through the server, not to a path only this machine can see.
    assert experiment["artifact_location"].startswith("mlflow-artifacts:")
    runs = search_runs(server, experiment["experiment_id"])
    parents = {r["info"]["run_id"]: r for r in runs if tags(r)["relulab.role"] == "point"}
    children = [r for r in runs if tags(r)["relulab.role"] == "seed"]

    assert sorted(tags(r)["relulab.point"] for r in parents.values()) == sorted(points)
    keys = sorted((tags(r)["relulab.point"], tags(r)["relulab.seed"]) for r in children)
    assert keys == sorted((p, s) for p in points for s in seeds), "one run per point and seed"

    for run in children:
        run_tags = tags(run)
        assert run["info"]["status"] == "FINISHED"
        assert run_tags["mlflow.parentRunId"] in parents
        assert run_tags["status"] in ("finished", "diverged")
        for key, value in PROVENANCE.items():
            assert run_tags[f"relulab.{key}"] == value, key
        assert re.fullmatch(r"[0-9a-f]{40}|uncommitted", run_tags["relulab.git_commit"])
        assert run_tags["relulab.device"].startswith("cpu")  # training.device: cpu
        metric_keys = {m["key"] for m in run["data"]["metrics"]}
        assert {
            "all/val_accuracy",
            "all/train_loss",
            "all/dead_fraction",
            "layer1/dead_fraction",
        } <= (metric_keys)
        last = epochs if run_tags["status"] == "finished" else int(run_tags["diverged_epoch"])
        for key in metric_keys:
            steps = sorted(m["step"] for m in history(server, run["info"]["run_id"], key))
            assert steps == list(range(last + 1)), (run_tags["relulab.point"], key)

    # The point's files went up through the server and come back unchanged.
    for parent in parents.values():
        point = tags(parent)["relulab.point"]
        listed = server.get("/api/2.0/mlflow/artifacts/list", run_id=parent["info"]["run_id"])
        assert {"epochs.csv", "layers.csv"} <= {f["path"] for f in listed.get("files", [])}
        artifact_uri = parent["info"]["artifact_uri"]
        assert artifact_uri.startswith("mlflow-artifacts:/")
        remote = artifact_uri.removeprefix("mlflow-artifacts:/")
        served = server.download(f"/api/2.0/mlflow-artifacts/artifacts/{remote}/epochs.csv")
        assert served == (workdir / "results" / "runs" / point / "epochs.csv").read_bytes()
        assert (workdir / "results" / "mlartifacts" / remote / "epochs.csv").exists()

    for point in points:
        info = json.loads((workdir / "results" / "runs" / point / "point.json").read_text())
        assert info["mlflow"]["tracking_uri"] == server.url
