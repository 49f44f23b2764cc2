"""Faults injected for real, one per case of docs/faults.md: each test says what relulab must do.

Crafted pickles, truncated and poisoned prepared data, near-equal grid values, oversized
configs, a tracking server killed mid-run, a deleted or truncated MLflow store, two processes
on one grid point, and the documented server command started on loopback.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import mlflow_server
from helpers.vision_files import write_cifar10
from helpers.workflow import ROOT, check_mlflow_runs, scratch_copy, snakemake
from mlflow.tracking import MlflowClient

from relulab.data import prepared as data
from relulab.data import vision
from relulab.study import config as cfg
from relulab.study import grid
from relulab.train import job, recover, store, tracking, tracking_study

STUDY = "relulab-faults"
RUNNER = Path(__file__).parent / "helpers" / "point_runner.py"


def small_config(epochs: int = 4, **top) -> dict:
    return cfg.validate(
        {
            "study": STUDY,
            "dataset": "digits",
            "activation": ["relu"],
            "zero_grad": [0.0],
            "lr": [0.05],
            "model": {"width": 8, "depth": 2},
            "training": {"epochs": epochs, "batch_size": 256, "seeds": 2},
            **top,
        }
    )


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return data.prepare("digits", tmp_path_factory.mktemp("data") / "digits.npz")


def metric_steps(uri: str, key: str = "all/val_accuracy") -> dict[str, list[int]]:
    """Per seed run (by point and seed), the steps of ``key`` MLflow holds, sorted."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([experiment.experiment_id], "tags.`relulab.role` = 'seed'")
    return {
        f"{r.data.tags['relulab.point']}/{r.data.tags['relulab.seed']}": sorted(
            m.step for m in client.get_metric_history(r.info.run_id, key)
        )
        for r in runs
    }


def run_in_process(
    config: dict,
    digits: Path,
    out: Path,
    uri: str,
    delay: float = 0.0,
    name: str = "job",
    hold: Path | None = None,
):
    """``point_runner.py`` started in the background, its stderr in ``out``-``name``.log;
    while ``hold`` exists, its epochs wait (with ``delay`` > 0)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path(out, name), "w")  # noqa: SIM115 - closed by the process's end
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    env["RELULAB_TEST_HOLD"] = str(hold or "")
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, str(RUNNER), json.dumps(config), str(digits), str(out), uri]
    return subprocess.Popen(
        [*command, str(delay)], stdout=subprocess.PIPE, stderr=log, text=True, env=env
    )


def log_path(out: Path, name: str = "job") -> Path:
    return out.with_name(f"{out.name}-{name}.log")


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


# -- 1. code in a data folder ---------------------------------------------------------------


class RunsCommand:
    """Unpickling this runs ``touch MARKER``: the payload of a crafted CIFAR-10 batch."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_cifar_batch_never_runs(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "MARKER"
    crafted = pickle.dumps({"data": RunsCommand(marker), "labels": [0]})
    # The injection is real: a plain unpickler runs the command.
    pickle.loads(crafted)
    assert marker.exists()
    marker.unlink()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(crafted)
    with pytest.raises(vision.UnverifiedDataError, match="data_batch_1.*published checksums"):
        data.prepare("cifar10", tmp_path / "out.npz", data_dir=tmp_path)
    with pytest.raises(vision.UnverifiedDataError):
        vision.fetch("cifar10", tmp_path)  # torchvision's own unpickling never sees it
    # Accepted on purpose, the file is still read with the arrays-only unpickler.
    with pytest.raises(vision.DataCorruptError, match="refusing to load posix.system"):
        vision.arrays("cifar10", tmp_path, accept_unverified=True)
    assert not marker.exists()
    assert not (tmp_path / "out.npz").exists()


# -- 2. every seed diverged; non-finite before training -------------------------------------


def test_non_finite_untrained_network_is_a_data_error(digits, tmp_path, monkeypatch):
    config = small_config()
    (point,) = grid.expand(config)
    split = data.load(digits)
    poisoned = data.Split(split.x_train * np.nan, split.y_train, split.x_test, split.y_test)
    # As if poisoned data had got past the check on load: training must still refuse it.
    monkeypatch.setattr(job.datasets, "load", lambda path, flatten: poisoned)
    with pytest.raises(job.NonFiniteStartError, match="data or configuration error"):
        job.run_point(point, config, digits, tmp_path / point.id, tracking_uri=None)
    assert not (tmp_path / point.id / "point.json").exists()
    assert not (tmp_path / point.id / "epochs.csv").exists()


# -- 3. bad prepared data -------------------------------------------------------------------


def rewrite(path: Path, **changes) -> None:
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    np.savez(path, **{**arrays, **changes})


@pytest.mark.parametrize(
    "fault, expected",
    [
        ("truncated", "cannot be read"),
        ("nan", "NaN or infinite"),
        ("label 12", "labels outside 0..9"),
        ("shapes", "train inputs are"),
        ("counts", "inputs but"),
    ],
)
def test_bad_prepared_data_never_replaces_finished_results(digits, tmp_path, fault, expected):
    config = small_config(epochs=2)
    (point,) = grid.expand(config)
    out = tmp_path / point.id
    job.run_point(point, config, digits, out, tracking_uri=None)
    before = {p.name: p.read_bytes() for p in out.glob("*.*") if p.suffix in (".csv", ".json")}
    bad = tmp_path / "bad.npz"
    bad.write_bytes(digits.read_bytes())
    with np.load(digits) as stored:
        x_train, y_train = stored["x_train"], stored["y_train"]
    if fault == "truncated":
        bad.write_bytes(digits.read_bytes()[: digits.stat().st_size // 2])
    elif fault == "nan":
        x_train = x_train.astype(np.float64)
        x_train[3, 0, 2, 2] = np.nan
        rewrite(bad, x_train=x_train)
    elif fault == "label 12":
        rewrite(bad, y_train=np.where(np.arange(len(y_train)) == 5, 12, y_train))
    elif fault == "shapes":
        rewrite(bad, x_test=np.zeros((4, 1, 7, 7)), y_test=np.zeros(4, dtype=np.int64))
    else:
        rewrite(bad, y_train=y_train[:-3])
    # Settings that make the finished point due again (a finished point is not even read).
    again = small_config(epochs=3)
    with pytest.raises(data.PreparedDataError) as error:
        job.run_point(point, again, bad, out, tracking_uri=None)
    assert expected in str(error.value) and str(bad) in str(error.value)
    assert "prepare_data" in str(error.value)
    after = {p.name: p.read_bytes() for p in out.glob("*.*") if p.suffix in (".csv", ".json")}
    assert after == before


def test_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def disk_full(path, **arrays):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.np, "savez_compressed", disk_full)
    with pytest.raises(OSError, match="No space"):
        data.prepare("digits", tmp_path / "digits.npz")
    assert list(tmp_path.iterdir()) == []


# -- 5. near-equal grid values --------------------------------------------------------------


def test_near_equal_values_keep_their_own_points():
    config = cfg.validate({"activation": ["relu"], "lr": [0.1, 0.1000001], "zero_grad": [0.0]})
    points = grid.main_grid({**config, "depth_study": None})
    assert len(points) == 2
    assert len({p.id for p in points}) == 2
    assert {p.lr for p in points} == {0.1, 0.1000001}
    # Values that read exactly in six digits keep the ids existing studies have.
    assert points[0].id == "relu_zg0_lr0.1_float32_d3_nobn"
    config = cfg.validate({"activation": ["relu"], "lr": [1e-05], "zero_grad": [1.0, 0.5]})
    assert [p.id.split("_")[1:3] for p in grid.main_grid(config)] == [
        ["zg1", "lr1e-05"],
        ["zg0.5", "lr1e-05"],
    ]


# -- 6. oversized configs -------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, key",
    [
        ({"model": {"width": 1_000_000_000}}, "model.width"),
        ({"training": {"seeds": 1_000_000}}, "training.seeds"),
        ({"dataset": "cifar10", "model": {"arch": "vgg", "width": 4096}}, "model.width"),
        ({"max_memory_gb": 0.001}, "dataset"),
    ],
)
def test_oversized_configs_are_refused_before_anything_is_built(change, key):
    started = time.monotonic()
    with pytest.raises(cfg.ConfigError) as error:
        cfg.validate(change)
    assert time.monotonic() - started < 5
    assert f"config key '{key}'" in str(error.value)
    assert "GB" in str(error.value) and "max_memory_gb" in str(error.value)


def test_schema_bounds_epochs_and_needs_a_scheme():
    with pytest.raises(cfg.ConfigError, match=r"training.epochs.*<= 100000"):
        cfg.validate({"training": {"epochs": 1.0e9}})
    with pytest.raises(cfg.ConfigError, match="tracking_uri"):
        cfg.validate({"tracking_uri": "results/mlflow.db"})
    assert cfg.validate({"tracking_uri": "http://127.0.0.1:5000"})["tracking_uri"]
    config = cfg.validate(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    assert cfg.estimate(config)["activations"] < 1e9  # the default study fits a laptop


# -- 10. printed commands -------------------------------------------------------------------


def test_printed_fetch_command_is_shell_quoted(tmp_path):
    where = tmp_path / "my data; rm -rf x"
    message = vision.missing_message("mnist", where)
    command = vision.fetch_command("mnist", where)
    assert command in message
    assert command.endswith(f"'{where}'")


# -- 4. corrupt and lost MLflow stores ------------------------------------------------------


def rebuild(uri: str, config: dict, results: str) -> dict:
    return recover.rebuild(uri, config, grid.expand(config), results).as_dict()


@pytest.mark.slow
def test_lost_store_is_made_once_and_every_finished_run_resent(digits, tmp_path):
    config = small_config(epochs=3, zero_grad=[0.0, 1.0])
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    tracking_study.ensure_experiment(uri, STUDY, tmp_path / "mlartifacts")
    for point in grid.expand(config):
        job.run_point(point, config, digits, tmp_path / "runs" / point.id, uri)
    before = metric_steps(uri)
    layer_before = metric_steps(uri, "layer1/dead_fraction")
    db.unlink()
    with pytest.raises(store.StoreLostError, match="Run the workflow again"):
        tracking.PointTracker(uri, STUDY, "any", "fingerprint")
    assert not db.exists(), "a job must not make an empty store"
    # Two processes at once (two Snakemake starts): the store is made and filled once.
    with get_context("spawn").Pool(2) as pool:
        results = pool.starmap(rebuild, [(uri, config, str(tmp_path))] * 2)
    assert sorted(len(r["resent"]) for r in results) == [0, 2]
    assert sorted(len(r["verified"]) for r in results) == [0, 2]
    # The new file under another spelling: MLflow keeps the deleted one open per URI.
    new_uri = f"sqlite:///{tmp_path}/./mlflow.db"
    assert metric_steps(new_uri) == before
    assert metric_steps(new_uri, "layer1/dead_fraction") == layer_before
    assert all(steps == [0, 1, 2, 3] for steps in before.values())
    client = MlflowClient(new_uri)
    sent = next(r for r in results if r["resent"])["runs"]
    for point in grid.expand(config):
        info = json.loads((tmp_path / "runs" / point.id / "point.json").read_text())
        parent = client.get_run(sent[point.id]["parent_run_id"])
        assert parent.data.tags["status"] == "finished"
        assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"epochs.csv"}
        for seed, run_id in sent[point.id]["seed_run_ids"].items():
            assert client.get_run(run_id).data.tags["status"] == info["seeds"][seed]["status"]


def test_corrupt_store_is_found(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking_study.ensure_experiment(uri, STUDY, tmp_path / "artifacts")
    store.check_sqlite(uri)
    db = tmp_path / "mlflow.db"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    with pytest.raises(store.StoreCorruptError, match=r"corrupt .*mv .*mlflow.db"):
        store.check_sqlite(uri)


# -- 8. two processes on one point ----------------------------------------------------------


@pytest.mark.slow
def test_two_processes_train_a_point_once(digits, tmp_path):
    config = small_config(epochs=12)
    (point,) = grid.expand(config)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking_study.ensure_experiment(uri, STUDY, tmp_path / "artifacts")
    out = tmp_path / "runs" / point.id
    hold = tmp_path / "hold"
    hold.touch()  # the first process stays mid-training until the second is at the lock
    first = run_in_process(config, digits, out, uri, delay=0.1, hold=hold)
    wait_for(lambda: (out / "checkpoints" / "last.ckpt").exists(), 300, "the first to train")
    second = run_in_process(config, digits, out, uri, name="second")
    waiting = "waiting for it to finish"
    wait_for(lambda: waiting in log_path(out, "second").read_text(), 300, "the second to wait")
    assert first.poll() is None and second.poll() is None
    hold.unlink()
    first_out, _ = first.communicate(timeout=300)
    second_out, _ = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0
    log = log_path(out, "second").read_text()
    assert f"is being trained by process {first.pid}" in log
    assert "trained by another process meanwhile; not training it again" in log
    assert json.loads(second_out) == json.loads(first_out)
    assert all(steps == list(range(13)) for steps in metric_steps(uri).values())


# -- 7. tracking server killed mid-run; 9. the documented server command --------------------


def free_port(preferred: int) -> int:
    """``preferred`` (``RELULAB_TEST_PORT`` moves it) if free on loopback, else any free one."""
    preferred += int(os.environ.get("RELULAB_TEST_PORT", "5105")) - 5105
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(workdir: Path, port: int, command: list[str] | None = None) -> subprocess.Popen:
    """``mlflow server`` on loopback (the README's command, or ``command``), in ``workdir``
    with its store under ``workdir/results``; waits until it answers."""
    server = mlflow_server.launch(workdir, port, workdir / f"server-{port}.log", command)

    def up() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
        except urllib.error.HTTPError:
            return True  # answers (an authenticating server says 401)
        except OSError:
            assert server.poll() is None, (workdir / f"server-{port}.log").read_text()
            return False
        return True

    wait_for(up, 180, "mlflow server")
    return server


def kill(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=30)


@pytest.mark.slow
def test_server_killed_mid_run_ends_the_job_in_bounded_time(digits, tmp_path):
    epochs = 30
    config = small_config(epochs=epochs, tracking_timeout_s=5)
    port = free_port(5105)
    uri = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    try:
        tracking_study.ensure_experiment(uri, STUDY)
        out = tmp_path / "runs" / "point"
        process = run_in_process(config, digits, out, uri, delay=0.5)
        wait_for(lambda: any(len(s) > 2 for s in metric_steps(uri).values()), 120, "metrics")
    finally:
        kill(server)
    killed_at = time.monotonic()
    process.communicate(timeout=120)
    waited = time.monotonic() - killed_at
    log = log_path(out).read_text()
    lines = [line for line in log.splitlines() if line.startswith("relulab: ")]
    assert process.returncode == 1
    assert len(lines) == 1 and f"tracking server {uri} did not answer" in lines[0]
    assert "checkpointed" in lines[0] and "Traceback" not in log
    assert waited < 5 + 30, f"the job took {waited:.0f} s to stop"
    assert (out / "checkpoints" / "last.ckpt").exists()
    server = start_server(tmp_path, port)
    try:
        rerun = run_in_process(config, digits, out, uri)
        rerun.communicate(timeout=300)
        assert rerun.returncode == 0
        steps = metric_steps(uri)
    finally:
        kill(server)
    assert len(steps) == 2
    assert all(history == list(range(epochs + 1)) for history in steps.values()), steps


def readme_server_command(name: str) -> list[str]:
    """The ``mlflow server`` command of README's Tracking server section named ``name``."""
    text = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {name} -->\s*```bash\n(.*?)```", text, flags=re.DOTALL)
    assert block, f"README lacks the {name} command"
    return block.group(1).replace("\\\n", " ").split()


@pytest.mark.slow
def test_documented_authenticated_server_starts_on_loopback(tmp_path):
    command = readme_server_command("authenticated-server")
    assert command[:2] == [".venv/bin/mlflow", "server"]
    assert command[command.index("--app-name") + 1] == "basic-auth"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    try:
        import flask_wtf  # noqa: F401 - MLflow's basic-auth app needs it
    except ImportError:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail("CI needs mlflow[auth] (Flask-WTF) for the authenticated server")
        pytest.skip("mlflow[auth] (Flask-WTF) is not installed")
    port = free_port(5106)
    server = start_server(tmp_path, port, command)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1",
                timeout=10,
            )
        assert refused.value.code == 401
    finally:
        kill(server)


# -- the workflow end to end: every seed diverged, then the store lost, then corrupt ---------


@pytest.mark.slow
def test_all_diverged_grid_builds_everything_and_survives_a_lost_store(tmp_path):
    workdir = scratch_copy(tmp_path)
    study = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    study["lr"] = [1.0e6]  # every seed diverges in its first epoch
    study["depth_study"] = {"enabled": False}
    (workdir / "config" / "diverged.yaml").write_text(yaml.safe_dump(study))
    args = ["--cores", "2", "--configfile", "config/diverged.yaml"]
    snakemake(workdir, *args)
    config = cfg.validate(study)
    summary = pd.read_csv(workdir / "results/tables/summary.csv")
    assert (summary.diverged_fraction == 1).all()
    assert (workdir / "results/findings.md").read_text().strip()
    for figure in ("dead_over_epochs", "accuracy_over_epochs", "accuracy_vs_lr", "dead_heatmap"):
        assert (workdir / "results/figures" / f"{figure}.png").stat().st_size > 0
    uri = f"sqlite:///{workdir}/results/mlflow.db"
    check_mlflow_runs(uri, config)

    (workdir / "results/mlflow.db").unlink()
    planned = snakemake(workdir, *args, "-n").stdout
    assert "rebuild_store" in planned and not (workdir / "results/mlflow.db").exists()
    again = snakemake(workdir, *args)
    # No grid point is trained again and no table is remade: the store alone is rebuilt.
    out = again.stdout + again.stderr
    assert "rule train_" not in out and "rule summarize" not in out, out[-3000:]
    check_mlflow_runs(uri, config)
    assert "Nothing to be done" in snakemake(workdir, *args, "-n").stdout

    db = workdir / "results/mlflow.db"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    corrupt = snakemake(workdir, *args, "--forcerun", "track_study", check=False)
    output = corrupt.stdout + corrupt.stderr
    assert corrupt.returncode != 0
    assert "relulab: the MLflow store results/mlflow.db is corrupt" in output
    assert "Traceback" not in output
    assert math.isfinite(summary.seeds.sum())
