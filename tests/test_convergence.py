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


def test_ranks_are_ranges_where_intervals_overlap():
    # a and b overlap, c is clearly worse; d has no interval (one seed) and separates from none.
    ranks = convergence.rank_ranges([0.8, 0.78, 0.5], [0.05, 0.05, 0.01])
    assert ranks == [(1, 2), (1, 2), (3, 3)]
    assert convergence.rank_ranges([0.8, 0.5], [0.0, math.nan]) == [(1, 2), (1, 2)]
    assert convergence.rank_ranges([0.9, 0.5], [0.0, 0.0]) == [(1, 1), (2, 2)]
    # Fewer steps is better.
    assert convergence.rank_ranges([10, 50], [1, 1], higher_is_better=False) == [(1, 1), (2, 2)]


def test_seeds_that_choose_the_lr_are_not_the_seeds_that_report_it():
    assert convergence.split_seeds([3, 0, 1, 2]) == ([0, 2], [1, 3])
    assert convergence.split_seeds([5]) == ([5], [5])


def lr_runs(lr, seed, accuracies, status="finished"):
    rows = run_rows(f"relu_lr{lr}", seed, accuracies, status=status)
    for row in rows:
        row["lr"] = lr
    return rows


def test_best_lr_is_chosen_on_selection_seeds_and_reported_on_the_others():
    # lr 0.1 looks best on the selection seeds (0, 2) only; lr 0.01 on the report seeds.
    good, bad = [0.5, 0.9, 0.9], [0.1, 0.2, 0.3]
    epochs = frame(
        lr_runs(0.1, 0, good),
        lr_runs(0.1, 2, good),
        lr_runs(0.1, 1, bad),
        lr_runs(0.1, 3, bad),
        lr_runs(0.01, 0, bad),
        lr_runs(0.01, 2, bad),
        lr_runs(0.01, 1, good),
        lr_runs(0.01, 3, good),
    )
    table = convergence.best_lr_table(convergence.run_table(epochs, 0.6))
    row = table.iloc[0]
    assert row["chosen_lr"] == 0.1
    assert row["selection"] == "held-out seeds"
    assert row["report_seeds"] == 2
    assert row["auc_mean"] == pytest.approx(
        convergence.run_table(frame(lr_runs(0.1, 1, bad)), 0.6)["auc"][0]
    )


def test_a_diverged_lr_is_never_chosen_and_all_diverged_is_a_row():
    epochs = frame(
        lr_runs(1.0, 0, [0.1, 0.1], status="diverged"),
        lr_runs(1.0, 1, [0.1, 0.1], status="diverged"),
    )
    table = convergence.best_lr_table(convergence.run_table(epochs, 0.6))
    row = table.iloc[0]
    assert row["diverged"] == 1
    assert math.isnan(row["auc_mean"])
    assert row["auc_rank_best"] == 0
