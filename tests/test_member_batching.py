"""Grid points that share an architecture, f'(0) and optimiser train as one stacked model, each
at its own learning rate: every point's outputs are bit for bit those of the point trained alone."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from helpers.training import die_after_epoch

from relulab.study import config as cfg
from relulab.study import grid
from relulab.train import job, optim


def study(
    activation: str, optimizer: str, precision: str, batch_norm: bool = False, init=("default",)
) -> dict:
    return cfg.validate(
        {
            "dataset": "digits",
            "activation": [activation],
            "zero_grad": [0.0],
            "lr": [0.003, 0.03, 0.3] if optimizer != "adam" else [0.001, 0.01, 0.03],
            "model": {"width": 16, "depth": 2, "batch_norm": batch_norm, "init": list(init)},
            "training": {
                "epochs": 2,
                "batch_size": 128,
                "seeds": 2,
                "precision": precision,
                "optimizer": optimizer,
            },
        }
    )


def outputs(run_dir) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    summary = json.loads((run_dir / "point.json").read_text())
    return (
        pd.read_csv(run_dir / "epochs.csv"),
        pd.read_csv(run_dir / "layers.csv"),
        summary["seeds"],
    )


@pytest.mark.parametrize(
    ("activation", "optimizer", "precision", "batch_norm", "init"),
    [
        ("relu", "adam", "float32", False, ["default", "kaiming_normal"]),
        ("prelu", "momentum", "float32", True, ["default"]),
        ("rrelu", "sgd", "float64", False, ["xavier_uniform"]),
    ],
)
def test_points_trained_together_equal_points_trained_alone(
    digits, tmp_path, activation, optimizer, precision, batch_norm, init
):
    config = study(activation, optimizer, precision, batch_norm, init)
    points = grid.expand(config)
    assert len(job.training_groups(points, config)) == 1
    together = job.run_points(points, config, digits, None, root=tmp_path / "together")
    assert [s["point"] for s in together] == [p.id for p in points]
    for point in points:
        alone_dir = tmp_path / "alone" / point.id
        job.run_point(point, config, digits, alone_dir, None)
        grouped_dir = tmp_path / "together" / "results" / "runs" / point.id
        for grouped, alone in zip(outputs(grouped_dir), outputs(alone_dir), strict=True):
            if isinstance(grouped, pd.DataFrame):
                pd.testing.assert_frame_equal(grouped, alone, check_exact=True)
            else:
                assert grouped == alone
        assert not (grouped_dir / "checkpoints").exists()
    # The learning rates (and inits) mattered: the points' final weights differ.
    hashes = {s["seeds"]["0"]["params_sha256"] for s in together}
    assert len(hashes) == len(points)


def test_groups_are_architecture_zero_grad_and_optimizer_across_lr_and_init():
    config = cfg.validate(
        {
            "dataset": "digits",
            "activation": ["relu", "tanh"],
            "zero_grad": [0.0, 1.0],
            "lr": [0.01, 0.1],
            "model": {"width": 16, "depth": [2, 3], "init": ["default", "kaiming_normal"]},
            "training": {"epochs": 1, "seeds": 2, "optimizer": ["sgd", "adam"]},
        }
    )
    groups = job.training_groups(grid.expand(config), config)
    # relu: 2 zero_grads x 2 optimizers x 2 depths; tanh: 2 optimizers x 2 depths; each group
    # holds both lrs at both inits.
    assert len(groups) == 12
    for group in groups:
        assert sorted((p.lr, p.init) for p in group) == [
            (0.01, "default"),
            (0.01, "kaiming_normal"),
            (0.1, "default"),
            (0.1, "kaiming_normal"),
        ]
        assert len({p.model_key() for p in group}) == 1
    conv = {**config, "model": {**config["model"], "arch": "cnn"}}
    assert all(len(g) == 1 for g in job.training_groups(grid.expand(config), conv))


@pytest.mark.parametrize("rule", ["sgd", "momentum", "adam"])
def test_member_optimizer_steps_each_run_of_members_as_torch_optim(rule):
    torch.manual_seed(0)
    lrs = [0.1, 0.1, 0.01, 0.3]
    weight = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    alone = [weight.detach()[m].clone().requires_grad_() for m in range(4)]
    stacked = optim.member_optimizer(rule, [weight], lrs, 0.01)
    assert optim.member_runs(lrs) == [(0, 2, 0.1), (2, 3, 0.01), (3, 4, 0.3)]
    singles = [optim.make_optimizer(rule, [w], lr, 0.01) for w, lr in zip(alone, lrs, strict=True)]
    x = torch.randn(7, 5, dtype=torch.float64)
    for _ in range(5):
        optim.zero_grad(stacked)
        torch.tanh(torch.einsum("mij,bj->mbi", weight, x)).square().sum().backward()
        stacked.step()
        for w, single in zip(alone, singles, strict=True):
            optim.zero_grad(single)
            torch.tanh(torch.einsum("ij,bj->bi", w, x)).square().sum().backward()
            single.step()
    for m in range(4):
        torch.testing.assert_close(weight[m].detach(), alone[m].detach(), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="learning rates"):
        optim.member_optimizer(rule, [torch.zeros(3, 2, requires_grad=True)], [0.1, 0.2], 0.0)


def test_points_trained_together_resume_from_their_shared_checkpoint(
    digits, tmp_path, monkeypatch, caplog
):
    """A group killed after epoch 1 resumes from its checkpoint (optimiser state of every run
    of members, noise generators) to the numbers of an uninterrupted run."""
    config = study("rrelu", "adam", "float32")
    points = grid.expand(config)
    job.run_points(points, config, digits, None, root=tmp_path / "straight")
    die_after_epoch(monkeypatch, 1)
    with pytest.raises(SystemExit):
        job.run_points(points, config, digits, None, root=tmp_path / "killed")
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="relulab.train.job"):
        job.run_points(points, config, digits, None, root=tmp_path / "killed")
    assert f"resuming {', '.join(p.id for p in points)} after epoch 1 " in caplog.text
    for point in points:
        runs = [tmp_path / root / "results" / "runs" / point.id for root in ("straight", "killed")]
        for resumed, straight in zip(outputs(runs[1]), outputs(runs[0]), strict=True):
            if isinstance(resumed, pd.DataFrame):
                pd.testing.assert_frame_equal(resumed, straight, check_exact=True)
            else:
                assert resumed == straight
