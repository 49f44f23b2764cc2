"""Exact twins across zero_grad values: identical without live exact zeros, apart with them."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.training import trainer

from relulab.data import prepared as data
from relulab.figures import twins as twins_figure
from relulab.nn import models
from relulab.study import config as cfg
from relulab.study import grid
from relulab.tables import twins
from relulab.train import control, job
from relulab.train.core import Settings
from relulab.train.hashing import parameter_hashes
from relulab.train.lightning import SeedStackModule
from relulab.train.stacked import build_stack


# -- the chain rule at a planted structural zero ------------------------------------------------
def _planted_gradients(zero_grad: float, planted: int = 2):
    """Gradients of a float64 MLP whose first-layer unit ``planted`` has weights and bias 0."""
    torch.manual_seed(0)
    net = models.mlp(5, 6, 2, 3, "relu", zero_grad=zero_grad).double()
    first, act = net[0], net[1]
    with torch.no_grad():
        first.weight[planted].zero_()
        first.bias[planted].zero_()
    x = torch.randn(16, 5, dtype=torch.float64)
    y = torch.arange(16) % 3
    seen = {}

    def keep(module, inputs, output):
        inputs[0].register_hook(lambda g: seen.__setitem__("z", g))
        output.register_hook(lambda g: seen.__setitem__("upstream", g))

    act.register_forward_hook(keep)
    torch.nn.functional.cross_entropy(net(x), y).backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters()}
    return grads, seen["z"], seen["upstream"], x


@pytest.mark.parametrize("zero_grad", [0.5, 1.0, 2.0])
def test_planted_zero_gets_zero_grad_times_upstream(zero_grad):
    planted = 2
    at_zero, z_grad0, upstream0, x = _planted_gradients(0.0, planted)
    at_a, z_grad, upstream, _ = _planted_gradients(zero_grad, planted)
    # The upstream gradient is the same in both runs and not zero on the planted unit.
    assert torch.equal(upstream0, upstream)
    assert (upstream[:, planted] != 0).all()
    # At the planted zero the pre-activation gradient is exactly zero_grad x upstream ...
    assert torch.equal(z_grad[:, planted], zero_grad * upstream[:, planted])
    assert torch.equal(z_grad0[:, planted], torch.zeros(16, dtype=torch.float64))
    # ... and elsewhere it is what PyTorch's own ReLU gives.
    others = [u for u in range(6) if u != planted]
    assert torch.equal(z_grad[:, others], z_grad0[:, others])
    # So the planted unit's weights and bias get zero_grad x (upstream-weighted inputs) ...
    expected_w = (zero_grad * upstream[:, planted]) @ x
    torch.testing.assert_close(at_a["0.weight"][planted], expected_w, rtol=1e-12, atol=0)
    torch.testing.assert_close(
        at_a["0.bias"][planted], (zero_grad * upstream[:, planted]).sum(), rtol=1e-12, atol=0
    )
    assert torch.equal(at_zero["0.weight"][planted], torch.zeros(5, dtype=torch.float64))
    assert not torch.equal(at_a["0.weight"][planted], at_zero["0.weight"][planted])
    # ... and every other gradient is bitwise the same.
    assert torch.equal(at_a["0.weight"][others], at_zero["0.weight"][others])
    for name in at_zero:
        if not name.startswith("0."):
            assert torch.equal(at_a[name], at_zero[name]), name


# -- twins in training --------------------------------------------------------------------------
def _train(split, zero_grad, plant=False, seeds=(0, 1), epochs=2, dtype=torch.float64):
    seeds = list(seeds)
    stack = build_stack(
        seeds, split.in_features, split.classes, 16, 2, "relu", zero_grad, False, "default", dtype
    )
    if plant:
        with torch.no_grad():
            stack.weights[0][:, 3, :] = 0.0
            stack.biases[0][:, 3] = 0.0
    module = SeedStackModule(
        stack, split.to("cpu", dtype), Settings(seeds=seeds, lr=0.1, epochs=epochs, batch_size=128)
    )
    trainer(epochs).fit(module)
    return module


def _rows(module, zero_grad):
    return pd.DataFrame(module.history.epochs).assign(
        activation="relu",
        zero_grad=zero_grad,
        lr=0.1,
        precision="float64",
        depth=2,
        batch_norm=False,
        optimizer="sgd",
        final_status="finished",
    )


def test_twins_without_exact_zeros_end_identical(digits):
    split = data.load(digits)
    first, second = _train(split, 0.0), _train(split, 1.0)
    for module in (first, second):
        assert all(row["live_exact_zeros"] == 0 for row in module.history.epochs)
    assert parameter_hashes(first.stack) == parameter_hashes(second.stack)
    table = twins.effect_table(pd.concat([_rows(first, 0.0), _rows(second, 1.0)]))
    row = table.iloc[0]
    assert row["seeds"] == 2 and row["departed"] == 0 and row["fraction_departed"] == 0
    assert row["accuracy_difference_mean"] == 0
    assert row["unexplained_departures"] == 0


def test_twins_with_a_planted_zero_depart_in_the_first_epoch(digits):
    split = data.load(digits)
    first, second = _train(split, 0.0, plant=True), _train(split, 1.0, plant=True)
    rows = pd.DataFrame(first.history.epochs)
    # The f'(0)=0 run meets the planted zero with a non-zero upstream gradient on every example
    # of every epoch (and, its gradient being 0 there, keeps the unit planted).
    trained = rows[rows.epoch > 0]
    assert (trained["live_exact_zeros"] >= len(split.x_train)).all()
    hashes0, hashes1 = parameter_hashes(first.stack), parameter_hashes(second.stack)
    assert all(a != b for a, b in zip(hashes0, hashes1, strict=True))
    table = twins.effect_table(pd.concat([_rows(first, 0.0), _rows(second, 1.0)]))
    row = table.iloc[0]
    assert row["departed"] == 2 and row["fraction_departed"] == 1
    assert row["first_departure_epoch_min"] == 1 and row["first_departure_epoch_median"] == 1
    assert row["unexplained_departures"] == 0
    assert row["live_exact_zeros_mean"] >= 2 * len(split.x_train)
    assert row["departed_ci_low"] > 0 and row["departed_ci_high"] == 1


def test_parameter_hashes_see_one_bit():
    stack = build_stack([0, 1], 4, 3, 5, 1, "relu", 0.0, False, "default", torch.float32)
    before = parameter_hashes(stack)
    assert before[0] != before[1]
    with torch.no_grad():
        weight = stack.weights[0][1]
        weight.view(torch.int32)[0, 0] ^= 1
    after = parameter_hashes(stack)
    assert after[0] == before[0] and after[1] != before[1]
    for dtype in (torch.bfloat16, torch.float16, torch.float64):
        assert len(parameter_hashes(stack.to(dtype))) == 2


def trained_twins(digits, tmp_path) -> tuple[dict, list]:
    """ReLU's f'(0)=0 and 1 twins (float64, 2 seeds, 2 epochs) trained by ``job.run_point``;
    the config and the points' run folders."""
    config = cfg.validate(
        {
            "dataset": "digits",
            "activation": ["relu"],
            "zero_grad": [0.0, 1.0],
            "lr": [0.1],
            "model": {"width": 16, "depth": 2},
            "training": {"epochs": 2, "batch_size": 128, "seeds": 2, "precision": "float64"},
        }
    )
    run_dirs = []
    for point in grid.expand(config):
        job.run_point(point, config, digits, tmp_path / point.id, tracking_uri=None)
        run_dirs.append(tmp_path / point.id)
    return config, run_dirs


def test_run_point_records_final_hashes_and_epoch_hashes(digits, tmp_path):
    config, run_dirs = trained_twins(digits, tmp_path)
    infos = [json.loads((d / "point.json").read_text()) for d in run_dirs]
    for info, run_dir in zip(infos, run_dirs, strict=True):
        epochs = pd.read_csv(run_dir / "epochs.csv")
        last = epochs.sort_values("epoch").groupby("seed").tail(1).set_index("seed")
        for seed, seed_info in info["seeds"].items():
            assert len(seed_info["params_sha256"]) == 64
            assert last.loc[int(seed), "params_sha256"] == seed_info["params_sha256"]
    # float64 twins meet no exact zero here: their final weights are bitwise equal.
    assert infos[0]["seeds"] == infos[1]["seeds"]
    loaded = twins.load(run_dirs)
    assert {"optimizer", "params_sha256", "final_status"} <= set(loaded.columns)
    table = twins.effect_table(loaded)
    assert len(table) == 1 and table.iloc[0]["departed"] == 0
    assert table.iloc[0]["precision"] == "float64"


def test_effect_table_pairs_only_same_settings_and_seed():
    def rows(zero_grad, seed, lr, hashes, accuracy):
        return pd.DataFrame(
            {
                "activation": "relu",
                "zero_grad": zero_grad,
                "lr": lr,
                "precision": "float32",
                "depth": 3,
                "batch_norm": False,
                "optimizer": "sgd",
                "init": "default",
                "seed": seed,
                "epoch": range(len(hashes)),
                "params_sha256": hashes,
                "live_exact_zeros": [0, 1, 0][: len(hashes)],
                "val_accuracy": accuracy,
                "final_status": "finished",
            }
        )

    frame = pd.concat(
        [
            rows(0.0, 0, 0.1, ["a", "b", "c"], 0.5),
            rows(1.0, 0, 0.1, ["a", "x", "y"], 0.6),
            rows(0.0, 1, 0.1, ["d", "e", "f"], 0.5),
            rows(1.0, 1, 0.1, ["d", "e", "f"], 0.5),
            rows(1.0, 0, 0.5, ["a", "b", "c"], 0.9),  # no f'(0)=0 twin at this lr
            rows(0.5, 0, 0.1, ["a", "b", "z"], 0.4),
        ]
    )
    frame.loc[(frame.seed == 1) & (frame.zero_grad == 0.0), "live_exact_zeros"] = 0
    table = twins.effect_table(frame)
    assert table[["zero_grad", "seeds", "departed"]].values.tolist() == [[0.5, 1, 1], [1.0, 2, 1]]
    one = table[table.zero_grad == 1.0].iloc[0]
    assert one["first_departure_epoch_min"] == 1
    assert one["accuracy_difference_mean"] == pytest.approx(0.05)
    half = table[table.zero_grad == 0.5].iloc[0]
    assert half["first_departure_epoch_min"] == 2
    assert half["unexplained_departures"] == 0
    assert list(table.columns) == twins.COLUMNS


def test_departure_without_a_live_zero_is_flagged():
    frame = pd.DataFrame(
        {
            "activation": "relu",
            "zero_grad": [0.0, 0.0, 1.0, 1.0],
            "lr": 0.1,
            "precision": "float32",
            "depth": 3,
            "batch_norm": False,
            "optimizer": "sgd",
            "seed": 0,
            "epoch": [0, 1, 0, 1],
            "params_sha256": ["a", "b", "a", "c"],
            "live_exact_zeros": 0,
            "val_accuracy": 0.5,
            "final_status": "finished",
        }
    )
    assert twins.effect_table(frame).iloc[0]["unexplained_departures"] == 1


def test_plot_writes_png_and_svg_also_without_twins(tmp_path):
    twins_figure.plot(pd.DataFrame(columns=twins.COLUMNS), tmp_path / "empty.png")
    assert (tmp_path / "empty.svg").exists()
    table = pd.DataFrame(
        [
            {
                "activation": "relu",
                "zero_grad": 1.0,
                "lr": lr,
                "precision": precision,
                "depth": 3,
                "batch_norm": False,
                "optimizer": "sgd",
                "variant": "relu (f'(0)=1)",
                "fraction_departed": 0.5,
                "departed_ci_low": 0.2,
                "departed_ci_high": 0.8,
                "accuracy_difference_mean": 0.01,
                "accuracy_difference_ci_low": -0.01,
                "accuracy_difference_ci_high": 0.03,
            }
            for lr in (0.1, 0.5)
            for precision in ("float32", "float16")
        ]
    )
    twins_figure.plot(table, tmp_path / "twins.png")
    assert (tmp_path / "twins.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_half_precision_training_runs_on_cpu(digits, tmp_path, precision):
    config = cfg.validate(
        {
            "dataset": "digits",
            "activation": ["relu"],
            "zero_grad": [0.0, 1.0],
            "lr": [0.1],
            "model": {"width": 16, "depth": 2, "batch_norm": [False, True]},
            "training": {"epochs": 1, "batch_size": 128, "seeds": 2, "precision": precision},
        }
    )
    run_dirs = []
    for point in grid.expand(config):
        assert point.precision == precision and precision in point.id
        summary = job.run_point(point, config, digits, tmp_path / point.id, tracking_uri=None)
        assert {info["status"] for info in summary["seeds"].values()} == {"finished"}
        epochs = pd.read_csv(tmp_path / point.id / "epochs.csv")
        assert epochs["val_accuracy"].between(0, 1).all()
        assert epochs["train_loss"].notna().all()
        run_dirs.append(tmp_path / point.id)
    table = twins.effect_table(twins.load(run_dirs))
    assert len(table) == 2 and (table["precision"] == precision).all()


def test_mlflow_seed_runs_carry_the_parameter_hash(digits, tmp_path):
    from mlflow.tracking import MlflowClient

    from relulab.train import tracking_names, tracking_study

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    config = cfg.validate(
        {
            "study": "hashes",
            "dataset": "digits",
            "activation": ["relu"],
            "zero_grad": [1.0],
            "lr": [0.1],
            "model": {"width": 8, "depth": 1},
            "training": {"epochs": 1, "batch_size": 256, "seeds": 2},
        }
    )
    tracking_study.ensure_experiment(uri, "hashes", tmp_path / "artifacts")
    point = grid.expand(config)[0]
    summary = job.run_point(point, config, digits, tmp_path / point.id, tracking_uri=uri)
    client = MlflowClient(uri)
    for seed, run_id in summary["mlflow"]["seed_run_ids"].items():
        tags = client.get_run(run_id).data.tags
        assert tags[tracking_names.TAG_PARAMS_SHA256] == summary["seeds"][seed]["params_sha256"]
    metrics = client.get_run(summary["mlflow"]["seed_run_ids"]["0"]).data.metrics
    assert "all/live_exact_zeros" in metrics and "all/params_sha256" not in metrics


# -- the 1-ulp control --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_perturb_one_ulp_moves_one_weight_per_seed_by_one_unit_in_the_last_place(dtype):
    stack = build_stack([0, 1], 5, 3, 4, 2, "relu", 0.0, False, "default", dtype)
    before = [p.detach().clone() for p in stack.parameters()]
    control.perturb_one_ulp(stack)
    first, rest = stack.weights[0], list(stack.parameters())[1:]
    integers = {torch.float64: torch.int64, torch.float32: torch.int32}.get(dtype, torch.int16)
    step = first.view(integers)[:, 0, 0].long() - before[0].view(integers)[:, 0, 0].long()
    # One ulp up: +1 in the bit pattern of a positive number, -1 of a negative one.
    assert step.abs().tolist() == [1, 1]
    assert (first[:, 0, 0] > before[0][:, 0, 0]).all()
    changed = (first.view(integers) != before[0].view(integers)).sum()
    assert int(changed) == 2
    for a, b in zip(before[1:], rest, strict=True):
        assert torch.equal(a, b)


def test_control_run_departs_and_lands_in_the_effect_table(digits, tmp_path):
    config, run_dirs = trained_twins(digits, tmp_path)
    reference = next(p for p in grid.expand(config) if p.zero_grad == 0.0)
    control_dir = tmp_path / "controls" / reference.id
    info = job.run_point(reference, config, digits, control_dir, None, perturbed=True)
    assert info["perturbed"] and info["fingerprint"].endswith("+ulp")
    table = twins.effect_table(twins.load(run_dirs), controls=twins.load([control_dir]))
    row = table.iloc[0]
    assert row["departed"] == 0 and row["departed_accuracy_differences"] == ""
    assert row["control_seeds"] == 2
    # One ulp apart at the start, so apart at the end; the accuracy may or may not move.
    assert row["control_fraction_departed"] == 1.0
    assert abs(row["control_accuracy_difference_mean"]) < 0.5
    assert list(table.columns) == twins.COLUMNS


def test_effect_table_lists_each_departed_seed_and_the_control():
    def rows(zero_grad, seed, hashes, accuracy):
        return pd.DataFrame(
            {
                "activation": "relu",
                "zero_grad": zero_grad,
                "lr": 0.1,
                "precision": "float32",
                "depth": 3,
                "batch_norm": False,
                "optimizer": "sgd",
                "seed": seed,
                "epoch": [0, 1],
                "params_sha256": hashes,
                "live_exact_zeros": [0, 1],
                "val_accuracy": accuracy,
                "final_status": "finished",
            }
        )

    epochs = pd.concat(
        [
            rows(0.0, 0, ["a", "b"], 0.50),
            rows(1.0, 0, ["a", "c"], 0.53),
            rows(0.0, 1, ["d", "e"], 0.50),
            rows(1.0, 1, ["d", "e"], 0.50),
        ]
    )
    controls = pd.concat([rows(0.0, 0, ["x", "y"], 0.49), rows(0.0, 1, ["z", "e"], 0.50)])
    row = twins.effect_table(epochs, controls=controls).iloc[0]
    assert row["departed"] == 1
    assert row["departed_accuracy_differences"] == "seed 0: +3.00"
    assert row["departed_accuracy_difference_max_abs"] == pytest.approx(0.03)
    assert row["control_seeds"] == 2
    assert row["control_fraction_departed"] == 0.5  # seed 1's control ended on its twin's weights
    assert row["control_accuracy_difference_mean"] == pytest.approx(-0.005)
    assert row["control_accuracy_differences"] == "seed 0: -1.00; seed 1: +0.00"
    without = twins.effect_table(epochs).iloc[0]
    assert without["control_seeds"] == 0 and np.isnan(without["control_fraction_departed"])
