"""PointTracker: few store calls, and nothing lost or logged twice when a job dies and resumes.

Epoch metrics are queued and sent every ``FLUSH_INTERVAL_S``, so a job killed between two sends
leaves epochs in its checkpoint that MLflow has not received; the resumed job must send exactly
those.
"""

from __future__ import annotations

import math
from collections import Counter

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from relulab.study import config as cfg
from relulab.study import grid
from relulab.train import job, tracking, tracking_names, tracking_study

STUDY = "relulab-tracking"
SEEDS = [0, 1, 2]
EPOCHS = 8
LAYERS = 2


def rows(epochs: range, seeds=SEEDS) -> tuple[list[dict], list[dict]]:
    """Epoch and layer rows shaped like ``History``'s, with values unique per seed and epoch."""
    epoch_rows, layer_rows = [], []
    for epoch in epochs:
        for seed in seeds:
            value = seed + epoch / 100
            epoch_rows.append(
                {
                    "seed": seed,
                    "epoch": epoch,
                    "step": 10 * epoch,
                    "train_loss": value,
                    "val_loss": value,
                    "val_accuracy": value,
                    "dead_fraction": value,
                    "status": "ok",
                    "params_sha256": "f" * 64,
                }
            )
            for layer in range(1, LAYERS + 1):
                layer_rows.append(
                    {"seed": seed, "epoch": epoch, "layer": layer, "sparsity": value + layer}
                )
    return epoch_rows, layer_rows


METRICS = ["all/train_loss", "all/val_loss", "all/val_accuracy", "all/dead_fraction"] + [
    f"layer{layer}/sparsity" for layer in range(1, LAYERS + 1)
]


@pytest.fixture
def uri(tmp_path) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking_study.ensure_experiment(uri, STUDY, tmp_path / "artifacts")
    return uri


class Calls:
    """Counts (and optionally fails) the store calls of one tracker's client."""

    def __init__(self, tracker: tracking.PointTracker, fail_log_batch_at: int | None = None):
        self.counts: Counter[str] = Counter()
        self.fail_at = fail_log_batch_at
        client = tracker.client
        for name in ("search_runs", "get_metric_history", "create_run", "log_batch", "set_tag"):
            setattr(client, name, self.wrap(name, getattr(client, name)))

    def wrap(self, name, call):
        def counted(*args, **kwargs):
            self.counts[name] += 1
            if name == "log_batch" and self.counts[name] == self.fail_at:
                raise SystemExit("killed")
            return call(*args, **kwargs)

        return counted


def tracker(uri: str) -> tracking.PointTracker:
    return tracking.PointTracker(uri, STUDY, "point", "fingerprint")


def seed_runs(uri: str) -> dict[str, list]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    found: dict[str, list] = {"point": [], "seed": []}
    for run in client.search_runs([experiment], max_results=1000):
        found[run.data.tags[tracking_names.TAG_ROLE]].append(run)
    return found


def assert_each_metric_once_per_epoch(uri: str, epochs: int = EPOCHS) -> None:
    """One run per seed, each metric exactly once per epoch, with that epoch's value; the
    parent's seed bands too."""
    client = MlflowClient(uri)
    runs = seed_runs(uri)
    assert len(runs["point"]) == 1
    (parent,) = runs["point"]
    for key in tracking_names.PARENT_METRICS:
        for name in (key, f"{key}.{tracking_names.LOWER}", f"{key}.{tracking_names.UPPER}"):
            history = client.get_metric_history(parent.info.run_id, f"all/{name}")
            assert sorted(m.step for m in history) == list(range(epochs + 1)), name
    assert sorted(int(r.data.tags[tracking_names.TAG_SEED]) for r in runs["seed"]) == SEEDS
    for run in runs["seed"]:
        seed = int(run.data.tags[tracking_names.TAG_SEED])
        assert sorted(run.data.metrics) == sorted(METRICS)
        for key in METRICS:
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(epochs + 1)), (seed, key)
            offset = int(key[5]) if key.startswith("layer") else 0
            for m in history:
                assert m.value == pytest.approx(seed + m.step / 100 + offset), (seed, key)


def finish(t: tracking.PointTracker) -> None:
    t.finish({seed: {"status": "ok", "params_sha256": "f" * 64} for seed in SEEDS})


def test_start_searches_once_and_reads_histories_only_on_resume(uri):
    first = tracker(uri)
    calls = Calls(first)
    first.start({"lr": 0.1, "model": {"width": 8}}, SEEDS)
    assert calls.counts["search_runs"] == 1
    assert calls.counts["get_metric_history"] == 0
    assert calls.counts["create_run"] == len(SEEDS) + 1
    assert first.logged_epochs == {seed: -1 for seed in SEEDS}

    again = tracker(uri)
    calls = Calls(again)
    again.start({"lr": 0.1, "model": {"width": 8}}, SEEDS)
    assert calls.counts["search_runs"] == 1
    assert calls.counts["create_run"] == 0
    # One history per seed, and the parent's.
    assert calls.counts["get_metric_history"] == len(SEEDS) + 1
    assert (again.parent_id, again.seed_runs) == (first.parent_id, first.seed_runs)


def test_metrics_are_sent_at_most_once_per_interval_and_at_finish(uri, monkeypatch):
    monkeypatch.setattr(tracking, "FLUSH_INTERVAL_S", 3600.0)
    t = tracker(uri)
    t.start({"lr": 0.1}, SEEDS)
    calls = Calls(t)
    for epoch in range(EPOCHS + 1):
        t.log_rows(*rows(range(epoch + 1)))
    assert calls.counts["log_batch"] == 0, "nothing sent before the interval has passed"

    monkeypatch.setattr(tracking, "FLUSH_INTERVAL_S", 0.0)
    t.log_rows(*rows(range(EPOCHS + 1)))
    assert calls.counts["log_batch"] == len(SEEDS) + 1, "one call per run for all queued epochs"
    assert t.logged_epochs == {seed: EPOCHS for seed in SEEDS}

    finish(t)
    # Each seed's tags go in one call; the parent's tags in one more; no set_tag.
    assert calls.counts["log_batch"] == 2 * (len(SEEDS) + 1)
    assert calls.counts["set_tag"] == 0
    assert_each_metric_once_per_epoch(uri)
    for run in seed_runs(uri)["seed"]:
        assert run.info.status == "FINISHED"
        assert run.data.tags["status"] == "ok"
        assert run.data.tags[tracking_names.TAG_PARAMS_SHA256] == "f" * 64
    (parent,) = seed_runs(uri)["point"]
    assert parent.data.tags["status"] == "finished" and parent.data.tags["diverged_seeds"] == "0"


def test_a_job_killed_between_sends_resumes_without_loss_or_duplicates(uri, monkeypatch):
    """Epochs 0-3 sent, epochs 4-6 queued when the process dies; the checkpoint holds 0-6."""
    monkeypatch.setattr(tracking, "FLUSH_INTERVAL_S", 3600.0)
    killed = tracker(uri)
    killed.start({"lr": 0.1}, SEEDS)
    for epoch in range(4):
        killed.log_rows(*rows(range(epoch + 1)))
    killed.flush()
    for epoch in range(4, 7):
        killed.log_rows(*rows(range(epoch + 1)))
    assert killed.logged_epochs == {seed: 3 for seed in SEEDS}
    del killed  # the queue dies with the process

    resumed = tracker(uri)
    resumed.start({"lr": 0.1}, SEEDS)
    assert resumed.logged_epochs == {seed: 3 for seed in SEEDS}
    # The resumed job's history (from the checkpoint) holds epochs 0-6, then trains on.
    for epoch in range(7, EPOCHS + 1):
        resumed.log_rows(*rows(range(epoch + 1)))
    finish(resumed)
    assert_each_metric_once_per_epoch(uri)


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_a_job_killed_inside_a_send_resumes_without_loss_or_duplicates(uri, monkeypatch, fail_at):
    """Calls hold whole epochs: a store that has an epoch's val_accuracy has all of it."""
    monkeypatch.setattr(tracking, "FLUSH_INTERVAL_S", 3600.0)
    per_epoch = len(METRICS)
    monkeypatch.setattr(tracking, "BATCH_METRICS", 2 * per_epoch + 1)  # two epochs a call
    killed = tracker(uri)
    killed.start({"lr": 0.1}, SEEDS)
    Calls(killed, fail_log_batch_at=fail_at)
    for epoch in range(6):
        killed.log_rows(*rows(range(epoch + 1)))
    with pytest.raises(SystemExit):
        killed.flush()

    resumed = tracker(uri)
    resumed.start({"lr": 0.1}, SEEDS)
    held = resumed.logged_epochs
    assert all(epoch % 2 == 1 or epoch == -1 for epoch in held.values()), held
    resumed.log_rows(*rows(range(EPOCHS + 1)))
    finish(resumed)
    assert_each_metric_once_per_epoch(uri)


# -- the training job ---------------------------------------------------------------------------
JOB_EPOCHS = 4


def small_point() -> tuple[grid.Point, dict]:
    config = cfg.validate(
        {
            "study": STUDY,
            "dataset": "digits",
            "activation": ["relu"],
            "zero_grad": [0.0],
            "lr": [0.05],
            "model": {"width": 8, "depth": 2},
            "training": {"epochs": JOB_EPOCHS, "batch_size": 256, "seeds": 2},
        }
    )
    return grid.expand(config)[0], config


def job_metrics(uri: str, summary: dict) -> dict[tuple[str, str], list[tuple[int, float]]]:
    client = MlflowClient(uri)
    out = {}
    for seed, run_id in summary["mlflow"]["seed_run_ids"].items():
        for key in client.get_run(run_id).data.metrics:
            history = client.get_metric_history(run_id, key)
            # NaN (grad_norm of epoch 0) as None, so that equal histories compare equal.
            out[seed, key] = sorted(
                (m.step, None if math.isnan(m.value) else m.value) for m in history
            )
    return out


@pytest.mark.parametrize("die_after", [2, JOB_EPOCHS])
def test_run_point_killed_before_any_send_logs_every_epoch_once(
    digits, tmp_path, monkeypatch, die_after
):
    """Killed after the checkpoint of epoch ``die_after`` (also the last one), nothing sent yet."""
    point, config = small_point()
    monkeypatch.setattr(tracking, "FLUSH_INTERVAL_S", 3600.0)
    straight_uri = f"sqlite:///{tmp_path}/straight.db"
    tracking_study.ensure_experiment(straight_uri, STUDY, tmp_path / "straight-artifacts")
    straight = job.run_point(point, config, digits, tmp_path / "straight", straight_uri)

    uri = f"sqlite:///{tmp_path}/killed.db"
    tracking_study.ensure_experiment(uri, STUDY, tmp_path / "killed-artifacts")
    save = job.SaveEveryEpoch.on_train_epoch_end

    def save_then_die(self, trainer, module):
        save(self, trainer, module)
        if trainer.current_epoch + 1 == die_after:
            raise SystemExit("killed")

    with monkeypatch.context() as patch:
        patch.setattr(job.SaveEveryEpoch, "on_train_epoch_end", save_then_die)
        with pytest.raises(SystemExit):
            job.run_point(point, config, digits, tmp_path / "killed", uri)
    client = MlflowClient(uri)
    for run_id in seed_runs(uri)["seed"]:
        assert client.get_metric_history(run_id.info.run_id, "all/val_accuracy") == []

    resumed = job.run_point(point, config, digits, tmp_path / "killed", uri)
    metrics = job_metrics(uri, resumed)
    assert metrics == job_metrics(straight_uri, straight)
    for (_, key), history in metrics.items():
        assert [step for step, _ in history] == list(range(JOB_EPOCHS + 1)), key
    epochs = pd.read_csv(tmp_path / "killed" / "epochs.csv")
    for seed, run_id in resumed["mlflow"]["seed_run_ids"].items():
        expected = epochs[epochs.seed == int(seed)]
        assert metrics[seed, "all/val_accuracy"] == list(
            zip(expected.epoch, expected.val_accuracy, strict=True)
        )
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags["status"] == resumed["seeds"][seed]["status"]
    assert len(seed_runs(uri)["seed"]) == 2 and len(seed_runs(uri)["point"]) == 1
