"""Aggregation of per-seed results into per-grid-point tables with 95 % intervals.

Every number in a table is a statistic over seeds. A diverged seed is counted in
``diverged_fraction`` and never averaged in as a number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from relulab.study.grid import AXES, AXIS_DEFAULTS
from relulab.study.grid import POINT_COLUMNS as _POINT_COLUMNS

# mean_ci95 lives in relulab.tables.stats; importable from here too, where it used to be.
from relulab.tables.stats import mean_ci95 as mean_ci95
from relulab.train import rows

# A table's point columns come from the grid's one definition of its axes (``Point``).
POINT_COLUMNS = list(_POINT_COLUMNS)
# The order rows are listed in: the grid's axes.
SORT_ORDER = list(AXES)


def _setting(axis: str, value) -> str:
    if axis == "batch_norm":
        return "batch norm" if bool(value) else "no batch norm"
    if axis == "depth":
        return f"{int(value)} hidden layers"
    if axis == "lr":
        return f"lr {float(value):g}"
    if axis == "init":
        return f"{value} init"
    return str(value)


def label_settings(frame: pd.DataFrame, shown=("activation", "zero_grad", "lr")) -> pd.DataFrame:
    """``frame`` with every axis that varies in it, and that a figure does not show by itself
    (``shown``), written into ``variant``: ``relu (f'(0)=0) | adam, batch norm``.

    Figures group, colour and facet by ``variant``, so no figure ever averages over an axis
    that varies.
    """
    varying = [
        axis
        for axis in AXES
        if axis not in ("activation", "zero_grad", *shown)
        and axis in frame
        and frame[axis].nunique(dropna=False) > 1
    ]
    if not varying or frame.empty:
        return frame
    suffix = [
        ", ".join(_setting(axis, value) for axis, value in zip(varying, values, strict=True))
        for values in frame[varying].itertuples(index=False)
    ]
    # The activation part of a label that was given settings before (labelling again replaces).
    base = frame["variant"].astype(str).str.split(" | ", n=1, regex=False).str[0]
    return frame.assign(variant=[f"{v} | {s}" for v, s in zip(base, suffix, strict=True)])


def variant_label(activation: str, zero_grad) -> str:
    """``relu (f'(0)=0)`` for kinked activations, the bare name for smooth ones."""
    if zero_grad is None or (isinstance(zero_grad, float) and math.isnan(zero_grad)):
        return activation
    return f"{activation} (f'(0)={float(zero_grad):g})"


def load_point(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A point's ``epochs.csv`` and ``layers.csv``, each with the point's parameters added."""
    run_dir = Path(run_dir)
    info = json.loads((run_dir / "point.json").read_text())
    epochs = rows.read_epochs(run_dir / "epochs.csv")
    layers = rows.read_layers(run_dir / "layers.csv")
    # Axes added to the grid later (e.g. init) take their default in older points' files.
    params = {"point": info["point"], **AXIS_DEFAULTS, **info["params"]}
    for frame in (epochs, layers):
        for key in reversed(POINT_COLUMNS):
            frame.insert(0, key, params[key])
    statuses = {int(s): v["status"] for s, v in info["seeds"].items()}
    for frame in (epochs, layers):
        frame["final_status"] = frame["seed"].map(statuses)
    return epochs, layers, info


def collect(run_dirs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All points' epoch rows and layer rows, with a readable ``variant`` column."""
    loaded = [load_point(d) for d in run_dirs]
    epochs = pd.concat([e for e, _, _ in loaded], ignore_index=True)
    layers = pd.concat([la for _, la, _ in loaded], ignore_index=True)
    for frame in (epochs, layers):
        frame["zero_grad"] = frame["zero_grad"].astype(float)
        frame["variant"] = [
            variant_label(a, z)
            for a, z in zip(frame["activation"], frame["zero_grad"], strict=True)
        ]
    return epochs, layers


def final_rows(epochs: pd.DataFrame) -> pd.DataFrame:
    """Each seed's last measured epoch (the divergence epoch for a diverged seed)."""
    ordered = epochs.sort_values(["point", "seed", "epoch"])
    return ordered.groupby(["point", "seed"], as_index=False).tail(1)


def summary(epochs: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """One row per grid point: final-epoch means and 95 % intervals over the finished seeds."""
    final = final_rows(epochs)
    last_layers = layers.merge(final[["point", "seed", "epoch"]], on=["point", "seed", "epoch"])
    worst_layer = (
        last_layers.groupby(["point", "seed"])["dead_fraction"]
        .max()
        .rename("max_layer_dead_fraction")
    )
    final = final.merge(worst_layer, left_on=["point", "seed"], right_index=True, how="left")
    rows = []
    for _, group in final.groupby("point", sort=False):
        finished = group[group["final_status"] != "diverged"]
        row = {key: group.iloc[0][key] for key in POINT_COLUMNS}
        row["variant"] = group.iloc[0]["variant"]
        row["seeds"] = len(group)
        row["diverged"] = int((group["final_status"] == "diverged").sum())
        row["diverged_fraction"] = row["diverged"] / len(group)
        row["final_epoch"] = int(finished["epoch"].max()) if len(finished) else math.nan
        for metric in (
            "val_accuracy",
            "val_loss",
            "train_loss",
            "dead_fraction",
            "inactive_fraction",
            "max_layer_dead_fraction",
        ):
            mean, half = mean_ci95(finished[metric])
            row[f"{metric}_mean"] = mean
            row[f"{metric}_ci95"] = half
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values(SORT_ORDER).reset_index(drop=True)


def write_table(table: pd.DataFrame, csv_path: str | Path, digits: int = 4) -> None:
    """A table as CSV, and beside it as Markdown (``.md``) and HTML (``.html``)."""
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv_path, index=False)
    shown = table.round(digits)
    csv_path.with_suffix(".md").write_text(shown.to_markdown(index=False) + "\n")
    from relulab.report import pages  # jinja2, only where tables are written

    fragment = shown.to_html(index=False, na_rep="", border=0, classes="relulab-table")
    page = pages.table_page(fragment, f"relulab table: {csv_path.stem}", _caption(csv_path, table))
    csv_path.with_suffix(".html").write_text(page + "\n")


def _caption(csv_path: Path, table: pd.DataFrame) -> str:
    return f"{len(table)} rows; the same numbers as {csv_path.name} (rounded here)."
