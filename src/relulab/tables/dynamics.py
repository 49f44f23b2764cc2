"""Death over time and gradient flow, per grid point, from the per-layer rows of a study.

Inputs are the rows of ``results/tables/layers.csv`` (one per seed, epoch and hidden layer, with
the point's parameters). Every number is a statistic over the finished seeds of a grid point
(mean and 95 % half-width); diverged seeds are counted, never averaged in. Hidden layers of an
MLP have equal width, so the mean over layers of a per-layer fraction is the fraction of all
hidden units.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from relulab.tables.summary import POINT_COLUMNS, mean_ci95

FRACTIONS = (
    "dead_fraction",
    "inactive_fraction",
    "ever_dead_fraction",
    "revived_fraction",
    "permanently_dead_fraction",
    "sparsity",
)
FIRST_LAYER = "first hidden layer"
DEEPER_LAYERS = "deeper hidden layers"


def _point_keys(frame: pd.DataFrame) -> list[str]:
    return [c for c in [*POINT_COLUMNS, "variant"] if c in frame.columns]


def _finished(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["final_status"] != "diverged"]


def layer_group(layer: int) -> str:
    """The group of hidden layer ``layer``: the first one (it sees the fixed data) or deeper."""
    return FIRST_LAYER if int(layer) == 1 else DEEPER_LAYERS


def network(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (point, seed, epoch): each fraction over all hidden units (mean over layers)."""
    keys = [*_point_keys(layers), "seed", "epoch", "final_status"]
    return layers.groupby(keys, as_index=False, dropna=False)[list(FRACTIONS)].mean()


def by_layer_group(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (point, seed, epoch, layer group): each fraction over the group's units."""
    frame = layers.assign(layer_group=layers["layer"].map(layer_group))
    keys = [*_point_keys(layers), "seed", "epoch", "final_status", "layer_group"]
    return frame.groupby(keys, as_index=False, dropna=False)[list(FRACTIONS)].mean()


def _add(row: dict, name: str, values) -> None:
    mean, half = mean_ci95(values)
    row[f"{name}_mean"] = mean
    row[f"{name}_ci95"] = half


def death_table(layers: pd.DataFrame) -> pd.DataFrame:
    """One row per grid point: how many units died, when, and how many came back.

    - ``born_dead``: dead at initialisation (epoch 0), all hidden units;
    - ``peak_dead``: the largest dead fraction of the whole network at any epoch, and
      ``peak_epoch`` the median epoch where it occurred;
    - ``final_*``: at the last epoch (dead, inactive, ever dead, revived, permanently dead);
    - ``worst_layer_dead``: the largest dead fraction of any single hidden layer at any epoch;
    - ``first_layer_*`` / ``deeper_*``: ever dead and revived at the last epoch, by layer group.
    """
    whole = network(layers)
    groups = by_layer_group(layers)
    rows = []
    for point, runs in whole.groupby("point", sort=False):
        seeds = runs["seed"].nunique()
        finished = _finished(runs)
        row = {key: runs.iloc[0][key] for key in _point_keys(runs)}
        row["seeds"] = seeds
        row["diverged"] = seeds - finished["seed"].nunique()
        ordered = finished.sort_values(["seed", "epoch"])
        first = ordered.groupby("seed").head(1)
        last = ordered.groupby("seed").tail(1)
        peaks = ordered.loc[ordered.groupby("seed")["dead_fraction"].idxmax()]
        _add(row, "born_dead", first["dead_fraction"])
        _add(row, "peak_dead", peaks["dead_fraction"])
        row["peak_epoch_median"] = float(np.median(peaks["epoch"])) if len(peaks) else math.nan
        for name in ("dead", "inactive", "ever_dead", "revived", "permanently_dead"):
            _add(row, f"final_{name}", last[f"{name}_fraction"])
        _add(row, "final_sparsity", last["sparsity"])
        point_layers = _finished(layers[layers["point"] == point])
        worst = point_layers.groupby("seed")["dead_fraction"].max()
        _add(row, "worst_layer_dead", worst)
        point_groups = _finished(groups[groups["point"] == point]).sort_values(["seed", "epoch"])
        for group, prefix in ((FIRST_LAYER, "first_layer"), (DEEPER_LAYERS, "deeper")):
            part = point_groups[point_groups["layer_group"] == group]
            end = part.groupby("seed").tail(1)
            _add(row, f"{prefix}_ever_dead", end["ever_dead_fraction"])
            _add(row, f"{prefix}_revived", end["revived_fraction"])
        rows.append(row)
    return _sorted(pd.DataFrame(rows))


def revival_table(layers: pd.DataFrame) -> pd.DataFrame:
    """One row per grid point and hidden layer, at the last epoch: ever dead, revived, and the
    share of ever-dead units that are alive again (``revived_share``, NaN when none died).

    The fractions are means over finished seeds; ``revived_share`` is total revived units over
    total ever-dead units across those seeds.
    """
    finished = _finished(layers).sort_values(["point", "seed", "epoch"])
    last = finished.groupby(["point", "seed", "layer"]).tail(1)
    rows = []
    for (_, layer), group in last.groupby(["point", "layer"], sort=False):
        row = {key: group.iloc[0][key] for key in _point_keys(group)}
        row["layer"] = int(layer)
        row["layer_group"] = layer_group(layer)
        row["seeds"] = len(group)
        for name in ("ever_dead", "revived", "permanently_dead", "dead"):
            _add(row, f"{name}", group[f"{name}_fraction"])
        ever = group["ever_dead_fraction"].sum()
        row["revived_share"] = group["revived_fraction"].sum() / ever if ever > 0 else math.nan
        rows.append(row)
    stats = [f"{n}_{s}" for n in ("ever_dead", "revived", "permanently_dead", "dead") for s in CI]
    columns = [*_point_keys(layers), "layer", "layer_group", "seeds", *stats, "revived_share"]
    return _sorted(_table(rows, columns), extra=["layer"])


def gradient_table(layers: pd.DataFrame, epoch: int | None = 1) -> pd.DataFrame:
    """One row per grid point and hidden layer: mean weight-gradient norm over an epoch's steps.

    ``epoch=1`` is the first epoch of training (closest to the initialisation the vanishing
    gradient argument is about); ``None`` takes each seed's last epoch. ``ratio_to_last`` is
    the layer's norm over the last hidden layer's norm, per seed, then averaged: below 1 means
    the gradient shrinks on its way back to the input.
    """
    finished = _finished(layers).dropna(subset=["grad_norm"])
    if epoch is None:
        last_epoch = finished.groupby(["point", "seed"])["epoch"].transform("max")
        chosen = finished[finished["epoch"] == last_epoch]
    else:
        chosen = finished[finished["epoch"] == epoch]
    deepest = chosen.groupby(["point", "seed"])["layer"].transform("max")
    last_norm = chosen["grad_norm"].where(chosen["layer"] == deepest)
    last_norm = last_norm.groupby([chosen["point"], chosen["seed"]]).transform("max")
    chosen = chosen.assign(ratio_to_last=chosen["grad_norm"] / last_norm)
    rows = []
    for (_, layer), group in chosen.groupby(["point", "layer"], sort=False):
        row = {key: group.iloc[0][key] for key in _point_keys(group)}
        row["layer"] = int(layer)
        row["epoch"] = "last" if epoch is None else epoch
        row["seeds"] = len(group)
        _add(row, "grad_norm", group["grad_norm"])
        _add(row, "ratio_to_last", group["ratio_to_last"])
        rows.append(row)
    stats = [f"{n}_{s}" for n in ("grad_norm", "ratio_to_last") for s in CI]
    columns = [*_point_keys(layers), "layer", "epoch", "seeds", *stats]
    return _sorted(_table(rows, columns), extra=["layer"])


CI = ("mean", "ci95")


def _table(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """``rows`` as a table; with no rows (every seed diverged) still one with its columns, so
    that it reads back from CSV and later steps find the columns they select."""
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def _sorted(table: pd.DataFrame, extra: list[str] | None = None) -> pd.DataFrame:
    if table.empty:
        return table
    order = [c for c in ("activation", "zero_grad", "lr", "precision", "depth") if c in table]
    return table.sort_values(order + (extra or [])).reset_index(drop=True)
