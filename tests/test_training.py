"""Training jobs: divergence is a result, twins are exact, seeds in a stack train as alone."""

import json

import pandas as pd
import torch
from helpers.training import trainer

from relulab.data import prepared as data
from relulab.study import config as cfg
from relulab.study import grid
from relulab.train import job
from relulab.train.core import Settings
from relulab.train.lightning import SeedStackModule
from relulab.train.stacked import build_stack
from relulab.train.zeros import counting_exact_zeros, counting_exact_zeros_of


def small_config(**training):
    return cfg.validate(
        {
            "dataset": "digits",
            "activation": ["relu"],
            "zero_grad": [0.0, 1.0],
            "lr": [0.1],
            "model": {"width": 16, "depth": 2},
            "training": {"epochs": 2, "batch_size": 128, "seeds": 2, **training},
        }
    )


def train(
    split,
    seeds,
    activation="relu",
    zero_grad=0.0,
    lr=0.1,
    dtype=torch.float64,
    epochs=2,
    poison=None,
):
    stack = build_stack(
        seeds,
        split.in_features,
        split.classes,
        16,
        2,
        activation,
        zero_grad,
        False,
        "default",
        dtype,
    )
    if poison is not None:
        with torch.no_grad():
            stack.weights[0][poison].fill_(float("inf"))
    settings = Settings(seeds=seeds, lr=lr, epochs=epochs, batch_size=128)
    module = SeedStackModule(stack, split.to("cpu", dtype), settings)
    trainer(epochs).fit(module)
    return module, stack


def test_diverging_seed_is_recorded_and_does_not_disturb_others(digits):
    split = data.load(digits)
    module, stack = train(split, [0, 1, 2], poison=1)
    rows = pd.DataFrame(module.history.epochs)
    assert module.history.diverged_epoch == {1: 0}
    assert rows[rows.seed == 1].status.tolist() == ["diverged"]
    alone, _ = train(split, [2])
    # Numbers to 1e-10, not the bitwise weight hash: a stack's and a lone seed's matrix
    # products may round differently on some CPUs (AVX-512), as in test_equivalence.
    together = rows[rows.seed == 2].drop(columns=["seed", "params_sha256"]).reset_index(drop=True)
    single = pd.DataFrame(alone.history.epochs).drop(columns=["seed", "params_sha256"])
    pd.testing.assert_frame_equal(together, single, rtol=1e-10, atol=1e-12)


def test_seed_in_a_stack_matches_the_seed_trained_alone(digits):
    split = data.load(digits)
    stacked_module, stacked = train(split, [0, 3, 5], activation="prelu")
    alone_module, alone = train(split, [3], activation="prelu")
    for w_stack, w_alone in zip(stacked.parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(w_stack[1], w_alone[0], rtol=1e-10, atol=1e-12)
    layers = pd.DataFrame(stacked_module.history.layers)
    single = pd.DataFrame(alone_module.history.layers)
    pd.testing.assert_frame_equal(
        layers[layers.seed == 3].drop(columns="seed").reset_index(drop=True),
        single.drop(columns="seed"),
        rtol=1e-10,
        atol=1e-12,
    )


def test_zero_grad_twins_are_identical_without_live_exact_zeros(digits):
    split = data.load(digits)
    first, w0 = train(split, [0, 1], zero_grad=0.0)
    second, w1 = train(split, [0, 1], zero_grad=1.0)
    assert all(row["live_exact_zeros"] == 0 for row in first.history.epochs)
    for a, b in zip(w0.parameters(), w1.parameters(), strict=True):
        assert torch.equal(a, b)


def test_run_point_writes_the_output_contract(digits, tmp_path):
    config = small_config()
    point = grid.expand(config)[0]
    summary = job.run_point(point, config, digits, tmp_path / point.id, tracking_uri=None)
    epochs = pd.read_csv(tmp_path / point.id / "epochs.csv")
    layers = pd.read_csv(tmp_path / point.id / "layers.csv")
    assert list(epochs.columns[:10]) == [
        "seed",
        "epoch",
        "step",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "dead_fraction",
        "inactive_fraction",
        "exact_zeros",
        "live_exact_zeros",
    ]
    assert sorted(epochs.epoch.unique()) == [0, 1, 2]
    assert len(epochs) == 2 * 3 and len(layers) == 2 * 3 * 2
    assert {"seed", "epoch", "layer", "dead_fraction", "inactive_fraction"} <= set(layers.columns)
    saved = json.loads((tmp_path / point.id / "point.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["seeds"]["0"]["status"] == "finished"
    assert not (tmp_path / point.id / "checkpoints").exists()


def test_huge_learning_rate_diverges_without_failing_the_job(digits, tmp_path):
    config = cfg.validate({**small_config(), "lr": [1e6]})
    point = grid.expand(config)[0]
    summary = job.run_point(point, config, digits, tmp_path / point.id, tracking_uri=None)
    statuses = {info["status"] for info in summary["seeds"].values()}
    assert statuses == {"diverged"}
    epochs = pd.read_csv(tmp_path / point.id / "epochs.csv")
    assert (epochs.groupby("seed").status.last() == "diverged").all()


def test_stacked_mlp_counts_its_exact_zeros_as_forward_hooks_do(digits):
    split = data.load(digits).to("cpu", torch.float32)
    stack = build_stack([0, 1], split.in_features, split.classes, 16, 2, "relu", 0.0, False,
                        "default", torch.float32)  # fmt: skip
    with torch.no_grad():  # three first-layer units of seed 0 whose input is exactly 0
        stack.weights[0][0, :3].zero_()
        stack.biases[0][0, :3].zero_()
    index = torch.arange(100).expand(2, -1)
    alive = torch.ones(2, dtype=torch.bool)
    own = torch.zeros(2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64)
    hooked = torch.zeros(2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64)
    with counting_exact_zeros_of(stack, *own):
        stack.backward(split.x_train, split.y_train, index, alive)
    with counting_exact_zeros(stack.acts, *hooked):
        stack.backward(split.x_train, split.y_train, index, alive)
    assert own[0].tolist() == hooked[0].tolist() and own[0][0] >= 300 and own[0][1] == 0
    assert own[1].tolist() == hooked[1].tolist() and own[1][0] > 0
