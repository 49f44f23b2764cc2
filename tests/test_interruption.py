"""Training killed with SIGKILL mid-grid: each rerun resumes it and retrains nothing.

Snakemake trains three grid points one at a time (``--cores 1``) and meets two faults:

1. Once a point has finished and the next has checkpointed two epochs, that job's training
   process alone is killed, as the kernel's OOM killer or a batch system's limit would. Snakemake
   reports the failed job and stops.
2. In the rerun, once two points are finished and the third has checkpointed two epochs (which
   of them comes last is Snakemake's choice), the whole Snakemake process group is killed, as on
   a lost node. Snakemake's lock stays behind: ``snakemake --unlock``, then run again.

Each rerun must leave finished points alone, resume the killed point from its checkpoint and
reach exactly the numbers of an uninterrupted run, and MLflow must end with one run per grid point
and seed, holding one value per metric and epoch.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch
import yaml
from helpers.training import die_after_epoch
from helpers.workflow import in_place, scratch_copy, snakemake, study_config
from mlflow.tracking import MlflowClient

from relulab.data import prepared as data
from relulab.study import config as cfg
from relulab.study import grid, paths
from relulab.train import job

# Three grid points; 30 epochs of a small MLP take seconds, so each kill lands mid-training.
CONFIG = {
    "study": "relulab-interruption",
    "dataset": "mnist1d",
    "activation": ["relu"],
    "zero_grad": [0.0, 0.5, 1.0],
    "lr": [0.1],
    "model": {"width": 16, "depth": 2, "batch_norm": False},
    "training": {
        "optimizer": "sgd",
        "epochs": 30,
        "batch_size": 64,
        "precision": "float32",
        "seeds": 2,
    },
}
# The test study replaces the default one: nothing of the default study merges in.
CONFIG_FILE = "config/config.yaml"
WAIT_S = 900


def rule_of(point: str) -> str:
    """How Snakemake's log names the training job of a one-point job."""
    return "rule train_" + re.sub("[^A-Za-z0-9_]", "_", point) + ":"


def checkpoint_epochs(path: Path) -> int | None:
    """Epochs held by a checkpoint, or None while it is missing or being replaced."""
    try:
        saved = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - absent or half-written: look again later
        return None
    return int(saved["epoch"]) + 1


def training_processes(root: psutil.Process) -> list[psutil.Process]:
    """The Snakemake script processes of rule train below ``root``."""
    found = []
    for child in root.children(recursive=True):
        try:
            if any(arg.endswith(".train.py") for arg in child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def launch(command: list[str], workdir: Path, log) -> subprocess.Popen:
    """Snakemake in a process group of its own, so that the group can be killed."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.Popen(
        command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_mid_training(
    runs: Path, points: list[str], process: subprocess.Popen, finished_at_least: int, since: int
) -> tuple[list[str], str]:
    """The finished points and the point in training, once enough have finished and the one in
    training has written a checkpoint after ``since`` (ns) that holds at least two epochs."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"snakemake ended before the kill ({process.returncode})")
        finished = [p for p in points if (runs / p / "point.json").exists()]
        for point in points:
            path = runs / point / "checkpoints" / "last.ckpt"
            if len(finished) < finished_at_least or point in finished:
                continue
            fresh = path.exists() and path.stat().st_mtime_ns > since
            if fresh and (checkpoint_epochs(path) or 0) >= 2:
                return finished, point
        time.sleep(0.05)
    raise AssertionError("no point reached a mid-training checkpoint in time")


def kill_training_job(process: subprocess.Popen) -> None:
    """SIGKILL the one training process, leaving Snakemake itself running."""
    victims = training_processes(psutil.Process(process.pid))
    assert len(victims) == 1, victims
    victims[0].send_signal(signal.SIGKILL)


def outputs(runs: Path, logs: Path, point: str) -> dict[str, tuple]:
    """A finished point's files with their modification times, to see they are not rewritten."""
    files = [runs / point / name for name in ("point.json", "epochs.csv", "layers.csv")]
    files.append(logs / f"{point}.log")
    return {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in files}


def held(runs: Path, point: str, epochs: int) -> int:
    """Epochs in the killed point's checkpoint; the kill must have landed mid-training."""
    count = checkpoint_epochs(runs / point / "checkpoints" / "last.ckpt")
    assert count is not None and 2 <= count < epochs, count
    assert not (runs / point / "point.json").exists()
    return count


def seed_runs(client: MlflowClient, experiment_id: str) -> dict[str, list]:
    runs = client.search_runs([experiment_id], max_results=1000)
    by_role: dict[str, list] = {"point": [], "seed": []}
    for run in runs:
        by_role[run.data.tags["relulab.role"]].append(run)
    return by_role


def reference_run(
    point: grid.Point, config: dict, data_path: Path, out: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The point trained in this process, with the single thread a workflow job has."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        job.run_point(point, config, data_path, out, tracking_uri=None)
    finally:
        torch.set_num_threads(threads)
    return pd.read_csv(out / "epochs.csv"), pd.read_csv(out / "layers.csv")


def test_job_resumes_from_its_epoch_checkpoint_to_the_same_numbers(tmp_path, monkeypatch, caplog):
    """In one process: a job that dies after epoch 3 checkpoints it and picks up from there."""
    config = cfg.validate(
        {
            "dataset": "digits",
            "activation": ["rrelu"],  # random slopes: the noise generators must resume too
            "zero_grad": [0.0],
            "lr": [0.05],
            "model": {"width": 16, "depth": 2},
            "training": {"optimizer": "momentum", "epochs": 5, "batch_size": 128, "seeds": 2},
        }
    )
    point = grid.expand(config)[0]
    digits = data.prepare("digits", tmp_path / "digits.npz")
    straight = reference_run(point, config, digits, tmp_path / "straight")

    die_after_epoch(monkeypatch, 3)
    with pytest.raises(SystemExit):
        reference_run(point, config, digits, tmp_path / "killed")
    assert checkpoint_epochs(tmp_path / "killed" / "checkpoints" / "last.ckpt") == 3
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="relulab.train.job"):
        resumed = reference_run(point, config, digits, tmp_path / "killed")
    assert f"resuming {point.id} after epoch 3 " in caplog.text
    pd.testing.assert_frame_equal(resumed[0], straight[0])
    pd.testing.assert_frame_equal(resumed[1], straight[1])
    assert sorted(resumed[0].epoch.unique()) == [0, 1, 2, 3, 4, 5]


@pytest.mark.slow
def test_killed_training_resumes_and_nothing_is_retrained_or_duplicated(tmp_path):
    workdir = scratch_copy(tmp_path / "study")
    (workdir / CONFIG_FILE).write_text(yaml.safe_dump(CONFIG))
    config = study_config(workdir, CONFIG_FILE)
    points = grid.by_id(config)
    assert len(points) == 3
    epochs = config["training"]["epochs"]
    runs, logs = workdir / "results" / "runs", workdir / "results" / "logs" / "train"
    # One point a job (the default): each job is named after its point.
    assert list(grid.jobs(config)) == list(points)

    def targets() -> list[str]:
        """The training of the grid: the points not yet finished (a finished point is no job's
        output, so it is not a target either)."""
        left = [p for p in points.values() if not grid.is_finished(p, config, runs / p.id)]
        return [str(paths.point_summary(point.id)) for point in left]

    def command() -> list[str]:
        snakemake = str(Path(sys.executable).parent / "snakemake")
        return [snakemake, *in_place(workdir), *targets(), "--cores", "1"]

    # 1. One point done, the next mid-way: SIGKILL its training process.
    started = time.time_ns()
    with (tmp_path / "first.log").open("w") as log:
        process = launch(command(), workdir, log)
        try:
            (done,), first = wait_mid_training(runs, list(points), process, 1, started)
            kill_training_job(process)
            assert process.wait(timeout=WAIT_S) != 0
        finally:
            stop(process)
    held_first = held(runs, first, epochs)
    done_files = outputs(runs, logs, done)

    client = MlflowClient(f"sqlite:///{workdir}/results/mlflow.db")
    experiment_id = client.get_experiment_by_name(config["study"]).experiment_id
    before = seed_runs(client, experiment_id)
    for run in before["seed"]:
        if run.data.tags["relulab.point"] == first:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "all/val_accuracy")]
            # Metrics reach MLflow in batches (tracking.FLUSH_INTERVAL_S), so it may hold fewer
            # epochs than the checkpoint; the rerun sends the rest (step 5 checks each once).
            assert max(steps, default=-1) <= held_first + 1, "no epoch beyond the next"

    # 2. Run again, in the order Snakemake picks: the killed point resumes (and finishes, unless
    #    it is the last to train). Once two points are finished and the third has checkpointed
    #    an epoch of this run, the whole Snakemake process group is killed.
    started = time.time_ns()
    with (tmp_path / "second.log").open("w") as log:
        process = launch(command(), workdir, log)
        try:
            finished, last = wait_mid_training(runs, list(points), process, 2, started)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=WAIT_S)
        finally:
            stop(process)
    (middle,) = set(finished) - {done}
    held_last = held(runs, last, epochs)
    second = (tmp_path / "second.log").read_text()
    assert rule_of(done) not in second, "a finished point was retrained"
    assert f"resuming {first} after epoch {held_first} " in (logs / f"{first}.log").read_text()
    assert outputs(runs, logs, done) == done_files
    middle_files = outputs(runs, logs, middle)

    # 3. The lock the killed Snakemake left behind goes with --unlock; then the rest trains.
    left = targets()
    snakemake(workdir, *left, "--cores", "1", "--unlock")
    result = snakemake(workdir, *left, "--cores", "1")
    third = result.stdout + result.stderr
    assert rule_of(last) in third
    assert rule_of(done) not in third and rule_of(middle) not in third
    assert f"resuming {last} after epoch {held_last} " in (logs / f"{last}.log").read_text()
    assert outputs(runs, logs, done) == done_files
    assert outputs(runs, logs, middle) == middle_files
    for point in points:
        assert not (runs / point / "checkpoints").exists()

    # 4. The killed points (one killed twice, if Snakemake chose so) equal uninterrupted runs
    #    of themselves, to the last bit.
    data_file = workdir / "results" / "data" / f"{config['dataset']}.npz"
    reference = {}
    for point in {first, last}:
        ref_epochs, ref_layers = reference_run(points[point], config, data_file, tmp_path / point)
        pd.testing.assert_frame_equal(pd.read_csv(runs / point / "epochs.csv"), ref_epochs)
        pd.testing.assert_frame_equal(pd.read_csv(runs / point / "layers.csv"), ref_layers)
        assert sorted(ref_epochs.epoch.unique()) == list(range(epochs + 1))
        reference[point] = ref_epochs

    # 5. MLflow: one parent per point, one run per seed, each metric once per epoch.
    after = seed_runs(client, experiment_id)
    assert sorted(r.data.tags["relulab.point"] for r in after["point"]) == sorted(points)
    keys = [(r.data.tags["relulab.point"], r.data.tags["relulab.seed"]) for r in after["seed"]]
    assert sorted(keys) == sorted((p, s) for p in points for s in ("0", "1"))
    earlier = {r.info.run_id for r in before["seed"]}
    assert earlier <= {r.info.run_id for r in after["seed"]}, "runs continued, not replaced"
    for run in after["point"] + after["seed"]:
        assert run.info.status == "FINISHED"
    for run in after["seed"]:
        point, seed = run.data.tags["relulab.point"], int(run.data.tags["relulab.seed"])
        for key in run.data.metrics:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(epochs + 1)), (point, seed, key)
        if point in reference:
            history = client.get_metric_history(run.info.run_id, "all/val_accuracy")
            expected = reference[point][reference[point].seed == seed]
            assert {m.step: m.value for m in history} == dict(
                zip(expected.epoch, expected.val_accuracy, strict=True)
            )
    for point in points:
        info = json.loads((runs / point / "point.json").read_text())
        assert info["mlflow"]["seed_run_ids"] == {
            r.data.tags["relulab.seed"]: r.info.run_id
            for r in after["seed"]
            if r.data.tags["relulab.point"] == point
        }
