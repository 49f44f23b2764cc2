"""How fast each run learns: epochs and steps to a target accuracy, area under the curve.

Per run (one seed of one grid point) from its epoch rows: the first epoch and optimiser step at
which validation accuracy reaches the target, the area under the validation-accuracy curve
(normalised by the number of epochs, so it is the mean accuracy over training and lies in
[0, 1]), the best and the final accuracy. Per grid point: means with 95 % intervals over the
finished seeds; a diverged seed is counted in ``diverged`` and never averaged in.

Rankings are honest about their noise (SCIENCE.md): an activation's rank is a range, from the
rank it would have if every activation whose interval overlaps its own were below it to the
rank if they were all above; a single number only where the intervals separate. A "best
learning rate" is chosen on one half of the seeds and reported on the other, so that the
choice does not flatter the number it reports.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from relulab.tables.summary import POINT_COLUMNS, mean_ci95

RUN_METRICS = ("epochs_to_target", "steps_to_target", "auc", "best_accuracy", "final_accuracy")
# What a comparison holds fixed besides the learning rate: activations are ranked within these.
SETTING_KEYS = ("optimizer", "init", "batch_norm", "precision", "depth")


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
    keep = _keys(epochs)
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
    keep = _keys(runs)
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
    for metric in ("auc", "steps_to_target"):
        table = add_rank_range(table, metric, [*_settings(table), "lr"])
    order = [c for c in ("activation", "zero_grad", "lr", "precision", "depth") if c in table]
    return table.sort_values(order).reset_index(drop=True)


def _keys(frame: pd.DataFrame) -> list[str]:
    keys = [*POINT_COLUMNS, "optimizer", "init", "variant"]
    return [c for c in dict.fromkeys(keys) if c in frame.columns]


def _settings(frame: pd.DataFrame) -> list[str]:
    return [c for c in SETTING_KEYS if c in frame.columns]


def rank_ranges(means, halves, higher_is_better: bool = True) -> list[tuple[int, int]]:
    """Each entry's best and worst possible rank (1 = best) given 95 % half-widths.

    Another entry is surely better only when its interval lies wholly on the better side of
    this one's; an entry without an interval (NaN half-width: one seed) separates from none.
    An entry with no mean has no rank, ``(0, 0)``.
    """
    means = np.asarray(means, dtype=float)
    halves = np.where(np.isfinite(halves), np.asarray(halves, dtype=float), np.inf)
    sign = 1.0 if higher_is_better else -1.0
    low, high = sign * means - halves, sign * means + halves
    ranked = np.isfinite(means)
    count = int(ranked.sum())
    result = []
    for i in range(len(means)):
        if not ranked[i]:
            result.append((0, 0))
            continue
        better = int(np.sum(ranked & (low > high[i])))
        worse = int(np.sum(ranked & (high < low[i])))
        result.append((1 + better, count - worse))
    return result


def add_rank_range(
    table: pd.DataFrame, metric: str, within: list[str], higher_is_better: bool | None = None
) -> pd.DataFrame:
    """``{metric}_rank_best`` and ``{metric}_rank_worst`` of each row among the rows that share
    the ``within`` columns, from ``{metric}_mean`` and ``{metric}_ci95``.

    A higher AUC is better; fewer steps to target are better (the default by name).
    """
    if higher_is_better is None:
        higher_is_better = not metric.endswith("_to_target")
    table = table.copy()
    table[f"{metric}_rank_best"] = 0
    table[f"{metric}_rank_worst"] = 0
    if table.empty:
        return table
    groups = table.groupby(within, sort=False, dropna=False) if within else [(None, table)]
    for _, group in groups:
        ranks = rank_ranges(group[f"{metric}_mean"], group[f"{metric}_ci95"], higher_is_better)
        table.loc[group.index, f"{metric}_rank_best"] = [r[0] for r in ranks]
        table.loc[group.index, f"{metric}_rank_worst"] = [r[1] for r in ranks]
    return table


def split_seeds(seeds) -> tuple[list[int], list[int]]:
    """Seeds that choose a learning rate and seeds that report it: alternate seeds in order.

    With one seed there is nothing to hold out; both lists are that seed, and the tables say
    ``selection`` "same seeds".
    """
    seeds = sorted({int(s) for s in seeds})
    if len(seeds) < 2:
        return seeds, seeds
    return seeds[0::2], seeds[1::2]


def _score(runs: pd.DataFrame, metric: str) -> float:
    """Mean of ``metric`` over runs, a diverged run scoring 0 (it must not win the choice)."""
    values = runs[metric].where(runs["status"] == "finished", 0.0)
    return float(values.mean()) if len(values) else math.nan


def best_lr_table(runs: pd.DataFrame, metric: str = "auc") -> pd.DataFrame:
    """One row per setting and activation variant: the learning rate with the best mean
    ``metric`` on the selection seeds, and its numbers on the held-out report seeds.

    ``runs`` is ``run_table``'s output. Columns: ``chosen_lr``, ``lrs`` (how many were tried),
    ``selection_seeds``/``report_seeds``, ``selection`` ("held-out seeds" or "same seeds"),
    then over the report seeds the counts and ``auc``/``steps_to_target`` means and 95 %
    half-widths, and rank ranges among the variants of the same setting.
    """
    if runs.empty:
        return pd.DataFrame()
    choose, report = split_seeds(runs["seed"])
    held_out = set(choose).isdisjoint(report)
    keep = [c for c in _keys(runs) if c not in ("point", "lr")]
    rows = []
    for _, group in runs.groupby([*_settings(runs), "variant"], sort=False, dropna=False):
        selecting = group[group["seed"].isin(choose)]
        scores = {lr: _score(part, metric) for lr, part in selecting.groupby("lr")}
        scores = {lr: v for lr, v in scores.items() if math.isfinite(v)}
        chosen = max(scores, key=scores.get) if scores else group["lr"].iloc[0]
        reported = group[(group["lr"] == chosen) & group["seed"].isin(report)]
        finished = reported[reported["status"] == "finished"]
        reached = finished[finished["reached"].astype(bool)]
        row = {key: group.iloc[0][key] for key in keep}
        row["chosen_lr"] = chosen
        row["point"] = reported["point"].iloc[0] if len(reported) else math.nan
        row["lrs"] = group["lr"].nunique()
        row["selection"] = "held-out seeds" if held_out else "same seeds"
        row["selection_seeds"] = len(choose)
        row["report_seeds"] = len(reported)
        row["diverged"] = int((reported["status"] == "diverged").sum())
        row["reached"] = len(reached)
        for name in ("auc", "steps_to_target", "epochs_to_target", "final_accuracy"):
            source = reached if name.endswith("_to_target") else finished
            mean, half = mean_ci95(source[name])
            row[f"{name}_mean"] = mean
            row[f"{name}_ci95"] = half
        rows.append(row)
    table = pd.DataFrame(rows)
    for name in ("auc", "steps_to_target"):
        table = add_rank_range(table, name, _settings(table))
    return table.sort_values([*_settings(table), "auc_rank_best", "variant"]).reset_index(drop=True)
