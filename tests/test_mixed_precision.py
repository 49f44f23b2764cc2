"""Mixed precision as people train: float32 master weights, autocast, dynamic loss scaling per
seed for float16; seeds and grid points still train as they would alone."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from helpers.training import trainer

from relulab.data import prepared as data
from relulab.study import config as cfg
from relulab.study import grid
from relulab.train import job, optim
from relulab.train.core import Settings
from relulab.train.lightning import SeedStackModule
from relulab.train.stacked import build_stack


def test_member_loss_scaler_follows_torch_grad_scaler():
    """The same gradients (some overflowing) give GradScaler's scales and skipped steps."""
    torch.manual_seed(0)
    ours = optim.MemberLossScaler(2, init_scale=1024.0, growth_interval=3)
    theirs = [torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3) for _ in range(2)]
    params = [torch.zeros(4, requires_grad=True) for _ in range(2)]
    opts = [torch.optim.SGD([p], lr=1.0) for p in params]
    stacked = torch.zeros(2, 4, requires_grad=True)
    for step in range(12):
        grads = torch.randn(2, 4)
        if step in (1, 2, 7):
            grads[step % 2, 0] = torch.inf
        stacked.grad = grads * ours.scale.view(2, 1)
        found = ours.unscale_([stacked])
        ours.update(found)
        for m in range(2):
            opts[m].zero_grad()
            theirs[m].scale((params[m] * grads[m]).sum()).backward()
            before = params[m].detach().clone()
            theirs[m].step(opts[m])
            theirs[m].update()
            skipped = torch.equal(before, params[m].detach())
            assert bool(found[m]) == skipped, (step, m)
            if not skipped:
                torch.testing.assert_close(stacked.grad[m], grads[m], rtol=1e-6, atol=1e-6)
            assert float(ours.scale[m]) == theirs[m].get_scale(), (step, m)


def mixed_module(split, seeds, precision=torch.float16, lr=0.01, epochs=2):
    stack = build_stack(
        seeds, split.in_features, split.classes, 32, 2, "relu", 1.0, False, "default",
        torch.float32,
    )  # fmt: skip
    settings = Settings(
        seeds=seeds, lr=lr, epochs=epochs, batch_size=128, optimizer="adam", autocast=precision
    )
    module = SeedStackModule(stack, split.to("cpu", torch.float32), settings)
    if module.core.scaler is not None:
        # Far above what float16 gradients hold: the first steps overflow and back off.
        module.core.scaler.scale.fill_(2.0**40)
    trainer(epochs).fit(module)
    return module


@pytest.mark.parametrize("precision", [torch.float16, torch.bfloat16])
def test_mixed_precision_seeds_train_as_alone_in_float32_master_weights(digits, precision):
    split = data.load(digits)
    together = mixed_module(split, [0, 1, 2], precision)
    alone = mixed_module(split, [1], precision)
    assert together.stack.dtype == torch.float32
    for w_together, w_alone in zip(
        together.stack.parameters(), alone.stack.parameters(), strict=True
    ):
        assert torch.equal(w_together[1], w_alone[0])
    rows = pd.DataFrame(together.history.epochs)
    single = pd.DataFrame(alone.history.epochs)
    pd.testing.assert_frame_equal(
        rows[rows.seed == 1].reset_index(drop=True), single, check_exact=True
    )
    assert rows.val_accuracy.iloc[-1] > 0.3
    scaler = together.core.scaler
    if precision == torch.float16:
        # Every seed backed off (skipping those steps) to a scale its gradients fit.
        assert bool((scaler.scale < 2.0**30).all())
    else:
        assert scaler is None


def test_mixed_precision_points_train_together_as_alone_and_resume(digits, tmp_path):
    config = cfg.validate(
        {
            "dataset": "digits",
            "activation": ["relu"],
            "zero_grad": [0.0, 1.0],
            "lr": [0.003, 0.03],
            "model": {"width": 16, "depth": 2},
            "training": {
                "epochs": 2,
                "batch_size": 128,
                "seeds": 2,
                "precision": "mixed_float16",
                "optimizer": "adam",
            },
        }
    )
    points = grid.expand(config)
    job.run_points(points, config, digits, None, root=tmp_path / "together")
    for point in points[:2]:
        job.run_point(point, config, digits, tmp_path / "alone" / point.id, None)
        grouped = tmp_path / "together" / "results" / "runs" / point.id
        for name in ("epochs.csv", "layers.csv"):
            pd.testing.assert_frame_equal(
                pd.read_csv(grouped / name),
                pd.read_csv(tmp_path / "alone" / point.id / name),
                check_exact=True,
            )
        summary = json.loads((grouped / "point.json").read_text())
        assert summary["params"]["precision"] == "mixed_float16"


def test_mixed_precision_is_refused_for_convolutional_models():
    with pytest.raises(cfg.ConfigError, match="mixed precision trains MLPs only"):
        cfg.validate(
            {
                "dataset": "digits",
                "activation": ["relu"],
                "zero_grad": [0.0],
                "lr": [0.1],
                "model": {"arch": "vgg"},
                "training": {"precision": "mixed_float16"},
            }
        )
