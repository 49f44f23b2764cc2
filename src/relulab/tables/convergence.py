"""How fast each run learns: epochs and steps to a target accuracy, area under the curve.

Per run (one seed of one grid point) from its epoch rows: the first epoch and optimiser step at
which validation accuracy reaches the target, the area under the validation-accuracy curve
(normalised by the number of epochs, so it is the mean accuracy over training and lies in
[0, 1]), the best and the final accuracy. Per grid point: means with 95 % intervals over the
finished seeds; a diverged seed is counted in ``diverged`` and never averaged in.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from relulab.tables.summary import POINT_COLUMNS, mean_ci95

RUN_METRICS = ("epochs_to_target", "steps_to_target", "auc", "best_accuracy", "final_accuracy")


def _area(epochs: np.ndarray, accuracy: np.ndarray) -> float:
    """Trapezoid area under accuracy over epochs, divided by the epochs spanned."""
    if len(epochs) < 2:
        return float(accuracy[0]) if len(accuracy) else math.nan
    area = float(np.sum((accuracy[1:] + accuracy[:-1]) / 2 * np.diff(epochs)))
    return area / float(epochs[-1] - epochs[0])


def run_table(epochs: pd.DataFrame, target: float) -> pd.DataFrame:
    """One row per (point, seed): convergence measures, or ``diverged`` and no numbers.

    ``epochs`` has the columns of ``results/tables/epochs.csv`` (``point``, ``seed``,
    ``epoch``, ``step``, ``val_accuracy``, ``final_status`` and the point parameters). A run
    that never reaches ``target`` has ``reached`` False and NaN epochs/steps to target.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target accuracy must be in (0, 1], not {target!r}")
    rows = []
    keep = [c for c in [*POINT_COLUMNS, "variant"] if c in epochs.columns]
    for (_, _), run in epochs.sort_values(["point", "seed", "epoch"]).groupby(
        ["point", "seed"], sort=False
    ):
        first = run.iloc[0]
        row = {key: first[key] for key in keep}
        row["seed"] = int(first["seed"])
        diverged = first["final_status"] == "diverged"
        row["status"] = "diverged" if diverged else "finished"
        row["target"] = target
        if diverged:
            row["reached"] = False
            row.update(dict.fromkeys(RUN_METRICS, math.nan))
            rows.append(row)
            continue
        accuracy = run["val_accuracy"].to_numpy(dtype=float)
        hit = np.flatnonzero(accuracy >= target)
        row["reached"] = bool(len(hit))
        row["epochs_to_target"] = float(run["epoch"].iloc[hit[0]]) if len(hit) else math.nan
        row["steps_to_target"] = float(run["step"].iloc[hit[0]]) if len(hit) else math.nan
        row["auc"] = _area(run["epoch"].to_numpy(dtype=float), accuracy)
        row["best_accuracy"] = float(accuracy.max())
        row["final_accuracy"] = float(accuracy[-1])
        rows.append(row)
    return pd.DataFrame(rows)


def point_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per grid point: counts, and mean and 95 % half-width of each run measure.

    Epochs and steps to target are averaged over the finished seeds that reached the target
    (``reached`` says how many); AUC, best and final accuracy over all finished seeds.
    """
    rows = []
    keep = [c for c in [*POINT_COLUMNS, "variant"] if c in runs.columns]
    for _, group in runs.groupby("point", sort=False):
        finished = group[group["status"] == "finished"]
        reached = finished[finished["reached"]]
        row = {key: group.iloc[0][key] for key in keep}
        row["target"] = group.iloc[0]["target"]
        row["seeds"] = len(group)
        row["diverged"] = int((group["status"] == "diverged").sum())
        row["finished"] = len(finished)
        row["reached"] = len(reached)
        row["reached_fraction"] = len(reached) / len(finished) if len(finished) else math.nan
        for metric in RUN_METRICS:
            source = reached if metric.endswith("_to_target") else finished
            mean, half = mean_ci95(source[metric])
            row[f"{metric}_mean"] = mean
            row[f"{metric}_ci95"] = half
        rows.append(row)
    table = pd.DataFrame(rows)
    order = [c for c in ("activation", "zero_grad", "lr", "precision", "depth") if c in table]
    return table.sort_values(order).reset_index(drop=True)
