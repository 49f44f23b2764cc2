"""A checkpoint resumes only the networks it holds.

A job killed mid-training and rerun with other seeds (changed, reordered or more of them), on
other code or another device starts its point afresh: the old checkpoint is moved aside, one log
line says what differed, and the results equal those of a run that was never interrupted. A
seed's state never goes to another seed's network.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from helpers.training import die_after_epoch
from mlflow.tracking import MlflowClient

from relulab.data import prepared as data
from relulab.study import config as cfg
from relulab.study import grid
from relulab.train import checkpoints, job, provenance, tracking_names, tracking_study
from relulab.train.core import SeedTraining, Settings
from relulab.train.stacked import build_stack

EPOCHS = 4


def config_with(seeds) -> dict:
    return cfg.validate(
        {
            "study": "relulab-resume",
            "dataset": "digits",
            "activation": ["relu"],
            "zero_grad": [0.0],
            "lr": [0.05],
            "model": {"width": 16, "depth": 2},
            "training": {"epochs": EPOCHS, "batch_size": 256, "seeds": seeds},
        }
    )


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return data.prepare("digits", tmp_path_factory.mktemp("data") / "digits.npz")


def run(config: dict, digits, out, uri: str | None = None) -> pd.DataFrame:
    """The config's one point trained into ``out``; its epochs.csv."""
    (point,) = grid.expand(config)
    job.run_point(point, config, digits, out, tracking_uri=uri)
    return pd.read_csv(out / "epochs.csv")


def killed_after_epoch_2(monkeypatch, config: dict, digits, out, uri: str | None = None) -> None:
    die_after_epoch(monkeypatch, 2)
    with pytest.raises(SystemExit):
        run(config, digits, out, uri)
    assert (out / "checkpoints" / "last.ckpt").exists()
    monkeypatch.undo()


@pytest.mark.parametrize(
    ("before", "after", "what"),
    [([0, 1], [5, 6], "seeds"), ([0, 1], [1, 0], "seeds"), (2, 3, "seeds")],
    ids=["changed", "reordered", "grown"],
)
def test_other_seeds_start_afresh_and_equal_an_uninterrupted_run(
    tmp_path, monkeypatch, caplog, digits, before, after, what
):
    killed_after_epoch_2(monkeypatch, config_with(before), digits, tmp_path / "point")
    with caplog.at_level("INFO", logger="relulab.train"):
        resumed = run(config_with(after), digits, tmp_path / "point")
    assert "resuming" not in caplog.text
    (line,) = [r.getMessage() for r in caplog.records if "afresh" in r.getMessage()]
    assert f"{what} " in line and "after epoch 2" in line
    aside = list((tmp_path / "point" / checkpoints.SUPERSEDED).glob("*.ckpt"))
    assert len(aside) == 1 and str(aside[0]) in line
    straight = run(config_with(after), digits, tmp_path / "straight")
    pd.testing.assert_frame_equal(resumed, straight)
    assert resumed.seed.drop_duplicates().tolist() == cfg.seeds(config_with(after))
    assert sorted(resumed.epoch.unique()) == list(range(EPOCHS + 1))


def test_other_code_starts_afresh(tmp_path, monkeypatch, caplog, digits):
    config = config_with(2)
    killed_after_epoch_2(monkeypatch, config, digits, tmp_path / "point")
    monkeypatch.setattr(provenance, "code_version", lambda: "edited-code")
    with caplog.at_level("INFO", logger="relulab.train"):
        resumed = run(config, digits, tmp_path / "point")
    assert "resuming" not in caplog.text
    assert "code_sha256" in caplog.text and "'edited-code'" in caplog.text
    straight = run(config, digits, tmp_path / "straight")
    pd.testing.assert_frame_equal(resumed, straight)


def test_the_same_seeds_device_and_code_resume(tmp_path, monkeypatch, caplog, digits):
    config = config_with([3, 1])
    killed_after_epoch_2(monkeypatch, config, digits, tmp_path / "point")
    with caplog.at_level("INFO", logger="relulab.train"):
        run(config, digits, tmp_path / "point")
    assert "resuming" in caplog.text and "afresh" not in caplog.text
    assert not (tmp_path / "point" / checkpoints.SUPERSEDED).exists()


def test_a_seeds_state_never_goes_to_another_seed(digits):
    split = data.load(digits)

    def training(seeds):
        stack = build_stack(seeds, split.in_features, split.classes, 8, 1, "relu", 0.0, False,
                            "default", torch.float64)  # fmt: skip
        return SeedTraining(stack, split, Settings(seeds=seeds, lr=0.1, epochs=1, batch_size=64))

    state = training([0, 1]).state()
    training([0, 1]).load_state(state)
    for other in ([1, 0], [5, 6], [0, 1, 2]):
        with pytest.raises(ValueError, match=r"seeds \[0, 1\]"):
            training(other).load_state(state)


def test_mlflow_runs_of_a_superseded_checkpoint_are_retired(tmp_path, monkeypatch, digits):
    """The runs that held the old code's epochs end (KILLED, role ``superseded``); the point's
    live runs hold exactly its new CSV rows, and name the code they ran under."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking_study.ensure_experiment(uri, "relulab-resume", tmp_path / "artifacts")
    config = config_with(2)
    killed_after_epoch_2(monkeypatch, config, digits, tmp_path / "point", uri)
    monkeypatch.setattr(provenance, "code_version", lambda: "edited-code")
    epochs = run(config, digits, tmp_path / "point", uri)

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("relulab-resume").experiment_id
    runs = client.search_runs([experiment], max_results=100)
    retired = [r for r in runs if r.data.tags["relulab.role"] == "superseded"]
    live = [r for r in runs if r.data.tags["relulab.role"] in ("point", "seed")]
    assert len(retired) == 3 and all(r.info.status == "KILLED" for r in retired)
    assert len(live) == 3 and all(r.info.status == "FINISHED" for r in live)
    for run_ in live:
        assert run_.data.tags["relulab.code_sha256"] == "edited-code"
        if run_.data.tags["relulab.role"] == "seed":
            seed = int(run_.data.tags["relulab.seed"])
            history = client.get_metric_history(run_.info.run_id, "all/val_loss")
            mine = epochs[epochs.seed == seed].set_index("epoch")["val_loss"]
            assert {m.step: m.value for m in history} == mine.to_dict()


def test_a_resumed_point_names_the_code_it_runs_under(tmp_path, monkeypatch, digits):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking_study.ensure_experiment(uri, "relulab-resume", tmp_path / "artifacts")
    config = config_with(2)
    killed_after_epoch_2(monkeypatch, config, digits, tmp_path / "point", uri)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("relulab-resume").experiment_id
    (parent,) = client.search_runs([experiment], "tags.`relulab.role` = 'point'")
    # As a run made by an earlier relulab: its code_versions tag names other code.
    client.set_tag(parent.info.run_id, tracking_names.TAG_CODE_VERSIONS, "older")
    run(config, digits, tmp_path / "point", uri)
    tags = client.get_run(parent.info.run_id).data.tags
    assert tags[tracking_names.TAG_CODE_VERSIONS] == f"older,{provenance.code_version()}"
    assert tags["relulab.git_commit"] == provenance.git_commit()
    summary = (tmp_path / "point" / "point.json").read_text()
    assert provenance.code_version() in summary
