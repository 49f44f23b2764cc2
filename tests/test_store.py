"""The MLflow store: a rebuild that survives any interruption, one line per store fault, stale
runs marked, and the rebuild's trigger (what parsing the workflow asks)."""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from helpers.workflow import ROOT
from mlflow.tracking import MlflowClient

from relulab.data import prepared as data
from relulab.study import config as cfg
from relulab.study import grid
from relulab.train import job, recover, store, tracking, tracking_names, tracking_study
from relulab.train import rows as rows_schema

STUDY = "relulab-store"
RUNNER = Path(__file__).parent / "helpers" / "rebuild_runner.py"
ENV = {
    **{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
}


def small_config() -> dict:
    return cfg.validate(
        {
            "study": STUDY,
            "dataset": "digits",
            "activation": ["relu"],
            "zero_grad": [0.0, 1.0],
            "lr": [0.05],
            "model": {"width": 8, "depth": 2},
            "training": {"epochs": 3, "batch_size": 256, "seeds": 2},
        }
    )


def uri_of(results: Path) -> str:
    return f"sqlite:///{results}/mlflow.db"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A study's results/ with its points trained (and their runs in a store of its own)."""
    digits = data.prepare("digits", tmp_path_factory.mktemp("data") / "digits.npz")
    results = tmp_path_factory.mktemp("trained") / "results"
    config = small_config()
    tracking_study.ensure_experiment(uri_of(results), STUDY, results / "mlartifacts")
    for point in grid.expand(config):
        job.run_point(point, config, digits, results / "runs" / point.id, uri_of(results))
    return results


def lost_store(trained: Path, tmp_path: Path) -> Path:
    """A copy of the study's results whose store was deleted (its experiment.json kept)."""
    results = tmp_path / "results"
    shutil.copytree(trained / "runs", results / "runs")
    (results / "mlflow").mkdir()
    (results / "mlflow" / "experiment.json").write_text("{}")
    return results


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_store_holds_the_files(results: Path, config: dict) -> None:
    """Every point: one finished parent and one finished run per seed, their params, and every
    metric history (per epoch and per layer) equal to the point's CSVs."""
    client = MlflowClient(uri_of(results))
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    for point in grid.expand(config):
        out = results / "runs" / point.id
        summary = json.loads((out / "point.json").read_text())
        epochs, layers = pd.read_csv(out / "epochs.csv"), pd.read_csv(out / "layers.csv")
        runs = client.search_runs([experiment], f"tags.`relulab.point` = '{point.id}'")
        parents = [r for r in runs if r.data.tags["relulab.role"] == "point"]
        seeds = {
            r.data.tags["relulab.seed"]: r for r in runs if r.data.tags["relulab.role"] == "seed"
        }
        assert len(parents) == 1 and len(runs) == 1 + len(seeds), point.id
        assert sorted(seeds) == sorted(summary["seeds"])
        params = tracking._flat(job.tracking_params(point, config))
        assert parents[0].data.params == params
        assert {r.info.status for r in runs} == {"FINISHED"}
        for seed, run in seeds.items():
            assert run.data.params == {**params, "seed": seed}
            assert run.data.tags["status"] == summary["seeds"][seed]["status"]
            rows = epochs[epochs.seed == int(seed)]
            columns = [
                c for c in rows.select_dtypes("number") if c not in ("seed", "epoch", "step")
            ]
            expected = {f"all/{c}": list(zip(rows.epoch, rows[c], strict=True)) for c in columns}
            for layer, part in layers[layers.seed == int(seed)].groupby("layer"):
                for c in (c for c in rows_schema.LAYER_METRICS if c in part.columns):
                    expected[f"layer{layer}/{c}"] = list(zip(part.epoch, part[c], strict=True))
            for key, wanted in expected.items():
                history = sorted(
                    (m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)
                )
                assert len(history) == len(wanted), (point.id, seed, key)
                assert all(
                    s == e and same(v, w) for (s, v), (e, w) in zip(history, wanted, strict=True)
                ), (point.id, seed, key)


@pytest.mark.slow
def test_lost_store_is_rebuilt_once_and_verified_after(trained, tmp_path):
    config = small_config()
    results = lost_store(trained, tmp_path)
    done = recover.rebuild(uri_of(results), config, grid.expand(config), results)
    assert sorted(done.resent) == sorted(p.id for p in grid.expand(config))
    assert not store.pending_marker(results).exists()
    assert_store_holds_the_files(results, config)
    again = recover.rebuild(uri_of(results), config, grid.expand(config), results)
    assert again.resent == [] and sorted(again.verified) == sorted(done.resent)
    assert_store_holds_the_files(results, config)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signal_name", "call"), [("KILL", 1), ("INT", 4), ("KILL", 9), ("INT", 16), ("KILL", 23)]
)
def test_interrupted_rebuild_is_finished_by_the_next_run(trained, tmp_path, signal_name, call):
    """The rebuild stopped before its 1st, 4th, ... write to MLflow (a run created, params
    logged, metrics half sent, a run not ended), by SIGKILL or Ctrl-C; the next run finishes
    it: every point's runs equal its files, none twice."""
    config = small_config()
    results = lost_store(trained, tmp_path)
    uri = uri_of(results)
    command = [sys.executable, str(RUNNER), json.dumps(config), str(results), uri]
    stopped = subprocess.run(
        [*command, str(call), signal_name], env=ENV, capture_output=True, text=True, timeout=600
    )
    assert stopped.returncode != 0, "the rebuild was to be stopped mid-way"
    assert store.pending_marker(results).exists()
    assert store.needs_rebuild(uri, results / "mlflow" / "experiment.json", results)
    finished = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert not store.needs_rebuild(uri, results / "mlflow" / "experiment.json", results)
    assert_store_holds_the_files(results, config)


def test_a_lost_store_or_a_pending_rebuild_asks_for_a_rebuild(tmp_path):
    uri, marker = uri_of(tmp_path), tmp_path / "mlflow" / "experiment.json"
    assert not store.needs_rebuild(uri, marker, tmp_path), "a new study makes its store"
    marker.parent.mkdir()
    marker.write_text("{}")
    assert store.needs_rebuild(uri, marker, tmp_path), "the store made for it is gone"
    (tmp_path / "mlflow.db").write_bytes(b"")
    assert not store.needs_rebuild(uri, marker, tmp_path)
    store.pending_marker(tmp_path).write_text("")
    assert store.needs_rebuild(uri, marker, tmp_path), "a rebuild was interrupted"


def test_runs_of_abandoned_settings_are_marked_stale(tmp_path):
    uri = uri_of(tmp_path)
    tracking_study.ensure_experiment(uri, STUDY, tmp_path / "artifacts")
    old = tracking.PointTracker(uri, STUDY, "relu_point", "old-fingerprint")
    old.start({"lr": 0.1}, [0, 1])
    new = tracking.PointTracker(uri, STUDY, "relu_point", "new-fingerprint")
    new.start({"lr": 0.2}, [0, 1])
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    live = client.search_runs([experiment], "attributes.status = 'RUNNING'")
    assert {r.data.tags[tracking_names.TAG_FINGERPRINT] for r in live} == {"new-fingerprint"}
    for run_id in [old.parent_id, *old.seed_runs.values()]:
        run = client.get_run(run_id)
        assert run.info.status == "KILLED"
        assert "new-fingerprint" in run.data.tags[tracking_names.TAG_STALE]


# -- store faults: one line that names the file and the fix ------------------------------------

CALL = f"""
import sys
from relulab.study import logs
from relulab.train import store, tracking
logs.to_file(sys.argv[2])
store.LOCK_ATTEMPTS = 1
with store.faults_in_one_line(sys.argv[1]):
    tracker = tracking.PointTracker(sys.argv[1], "{STUDY}", "relu_point", "fingerprint")
    tracker.start({{"lr": 0.1}}, [0])
"""


def faulty_store(fault: str, folder: Path) -> tuple[Path, list[str]]:
    """A store with ``fault``; the command prefix that runs a job's first calls on it."""
    db = folder / "mlflow.db"
    tracking_study.ensure_experiment(f"sqlite:///{db}", STUDY, folder / "artifacts")
    prefix: list[str] = []
    if fault in ("older", "newer"):
        revision = {"older": "451aebb31d03", "newer": "ffffffffffff"}[fault]
        with sqlite3.connect(db) as connection:
            connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        connection.close()
    elif fault == "truncated":
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    elif fault == "readonly":
        if os.geteuid() == 0:  # root writes anything: the job runs as another user
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv")
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            folder.chmod(0o777)  # the job's log goes here; the store stays root's
        db.chmod(0o444)
    return db, prefix


@pytest.mark.parametrize(
    ("fault", "fix"),
    [
        ("older", "mlflow db upgrade"),
        ("newer", "mv "),
        ("truncated", "mv "),
        ("readonly", "chmod u+w"),
        pytest.param("locked", "fuser", marks=pytest.mark.slow),
    ],
)
def test_store_fault_ends_in_one_line_naming_the_file_and_the_fix(fault, fix):
    folder = Path(tempfile.mkdtemp(prefix="relulab-store-"))
    folder.chmod(0o755)
    try:
        db, prefix = faulty_store(fault, folder)
        holder = None
        if fault == "locked":  # a reader holding its transaction open
            holder = sqlite3.connect(db, isolation_level=None)
            holder.execute("BEGIN")
            holder.execute("SELECT * FROM experiments").fetchall()
        command = [*prefix, sys.executable, "-c", CALL, f"sqlite:///{db}", str(folder / "job.log")]
        result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
        if holder is not None:
            holder.close()
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1, result.stderr[-3000:]
        assert len(lines) == 1, result.stderr[-3000:]
        assert lines[0].startswith(f"relulab: the MLflow store {db}")
        assert fix in lines[0] and "Traceback" not in result.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)
