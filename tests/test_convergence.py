"""Convergence per run and per grid point: epochs and steps to target, area under the curve."""

import math

import pandas as pd
import pytest

from relulab.tables import convergence
from relulab.tables.summary import mean_ci95

STEPS_PER_EPOCH = 10


def run_rows(point, seed, accuracies, status="finished", activation="relu"):
    return [
        {
            "point": point,
            "activation": activation,
            "zero_grad": 0.0,
            "lr": 0.1,
            "precision": "float32",
            "depth": 3,
            "batch_norm": False,
            "variant": f"{activation} (f'(0)=0)",
            "seed": seed,
            "epoch": epoch,
            "step": epoch * STEPS_PER_EPOCH,
            "val_accuracy": accuracy,
            "final_status": status,
        }
        for epoch, accuracy in enumerate(accuracies)
    ]


def frame(*runs):
    return pd.DataFrame([row for run in runs for row in run])


def test_epochs_and_steps_to_target_are_the_first_measurement_at_or_above_it():
    runs = convergence.run_table(frame(run_rows("p", 0, [0.1, 0.4, 0.6, 0.5, 0.8])), 0.6)
    row = runs.iloc[0]
    assert row["reached"]
    assert row["epochs_to_target"] == 2
    assert row["steps_to_target"] == 2 * STEPS_PER_EPOCH
    assert row["best_accuracy"] == 0.8
    assert row["final_accuracy"] == 0.8


def test_auc_is_the_trapezoid_mean_accuracy_over_training():
    runs = convergence.run_table(frame(run_rows("p", 0, [0.1, 0.4, 0.7, 0.8])), 0.5)
    expected = ((0.1 + 0.4) / 2 + (0.4 + 0.7) / 2 + (0.7 + 0.8) / 2) / 3
    assert runs.iloc[0]["auc"] == pytest.approx(expected)
    flat = convergence.run_table(frame(run_rows("q", 0, [0.3, 0.3, 0.3])), 0.5)
    assert flat.iloc[0]["auc"] == pytest.approx(0.3)


def test_a_run_that_never_reaches_the_target_has_no_epochs_to_target():
    row = convergence.run_table(frame(run_rows("p", 0, [0.1, 0.2, 0.3])), 0.6).iloc[0]
    assert not row["reached"]
    assert math.isnan(row["epochs_to_target"])
    assert math.isnan(row["steps_to_target"])
    assert row["best_accuracy"] == 0.3


def test_diverged_runs_are_counted_and_never_averaged_in():
    data = frame(
        run_rows("p", 0, [0.1, 0.7, 0.8]),
        run_rows("p", 1, [0.1, 0.5, 0.9]),
        # A diverged run whose numbers would move every mean if they were averaged in.
        run_rows("p", 2, [0.1, 0.99, 0.0], status="diverged"),
    )
    runs = convergence.run_table(data, 0.6)
    diverged = runs[runs["seed"] == 2].iloc[0]
    assert diverged["status"] == "diverged"
    assert all(math.isnan(diverged[m]) for m in convergence.RUN_METRICS)
    point = convergence.point_table(runs).iloc[0]
    assert (point["seeds"], point["diverged"], point["finished"]) == (3, 1, 2)
    assert point["final_accuracy_mean"] == pytest.approx((0.8 + 0.9) / 2)
    assert point["best_accuracy_mean"] == pytest.approx((0.8 + 0.9) / 2)


def test_point_means_and_intervals_are_over_seeds_and_epochs_to_target_over_reached_seeds():
    data = frame(
        run_rows("p", 0, [0.1, 0.7, 0.8]),
        run_rows("p", 1, [0.1, 0.5, 0.65]),
        run_rows("p", 2, [0.1, 0.2, 0.3]),
    )
    runs = convergence.run_table(data, 0.6)
    point = convergence.point_table(runs).iloc[0]
    assert point["reached"] == 2
    assert point["reached_fraction"] == pytest.approx(2 / 3)
    assert point["epochs_to_target_mean"] == pytest.approx(1.5)
    mean, half = mean_ci95(runs["auc"])
    assert point["auc_mean"] == pytest.approx(mean)
    assert point["auc_ci95"] == pytest.approx(half)


def test_one_row_per_point_in_a_stable_order():
    data = frame(
        run_rows("tanh_p", 0, [0.1, 0.5], activation="tanh"),
        run_rows("relu_p", 0, [0.1, 0.7]),
        run_rows("relu_p", 1, [0.1, 0.8]),
    )
    table = convergence.point_table(convergence.run_table(data, 0.6))
    assert list(table["point"]) == ["relu_p", "tanh_p"]
    assert list(table["seeds"]) == [2, 1]


@pytest.mark.parametrize("target", [0, -0.1, 1.5])
def test_target_outside_zero_one_is_refused(target):
    with pytest.raises(ValueError, match="target accuracy"):
        convergence.run_table(frame(run_rows("p", 0, [0.1, 0.2])), target)
