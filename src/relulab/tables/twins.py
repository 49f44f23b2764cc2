"""Exact twins: does the value of f'(0) change what training does?

Two runs that differ only in ``zero_grad`` (same seed: same initial weights, same data order,
same noise) compute bitwise the same thing until an exact zero meets a non-zero upstream
gradient, and may differ from then on. Each training seed records, per epoch, a hash of its
parameters (``params_sha256``) and the exact zeros it met with a non-zero upstream gradient
(``live_exact_zeros``). Here each seed at ``zero_grad=a`` is paired with the same seed at
``zero_grad=0`` (all other settings equal), and per grid point we report: the fraction of seeds
whose trajectory departs from its twin, the first epoch at which it does, and the paired
difference in final validation accuracy with a 95 % interval over seeds.

Most twins never meet an exact zero and are bitwise copies, so a mean over seeds mixes a few
real differences with zeros by construction. The table therefore also lists each departed
seed's own difference, and compares it with the 1-ulp control (``relulab.train.control``):
the same seed at f'(0)=0 with one weight moved by one unit in the last place. A control's
weights differ from the start, so it departs by construction; what it measures is how large
the final-accuracy difference of *any* last-bit difference becomes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from relulab.experiments.bifurcation import PRECISIONS
from relulab.study import grid
from relulab.tables import summary as analysis
from relulab.tables.stats import wilson_interval

REFERENCE = 0.0
# Every grid axis but zero_grad: twins agree on all of them.
AXES = [axis for axis in grid.AXES if axis != "zero_grad"]
COLUMNS = [
    *AXES,
    "zero_grad",
    "reference_zero_grad",
    "variant",
    "seeds",
    "departed",
    "fraction_departed",
    "departed_ci_low",
    "departed_ci_high",
    "first_departure_epoch_min",
    "first_departure_epoch_median",
    "live_exact_zeros_mean",
    "unexplained_departures",
    "both_finished",
    "accuracy_difference_mean",
    "accuracy_difference_ci_low",
    "accuracy_difference_ci_high",
    "departed_accuracy_differences",
    "departed_accuracy_difference_max_abs",
    "control_seeds",
    "control_fraction_departed",
    "control_accuracy_difference_mean",
    "control_accuracy_difference_max_abs",
    "control_accuracy_differences",
]
# The control columns, for twins whose point has no control run.
CONTROL_COLUMNS = [c for c in COLUMNS if c.startswith("control_")]


def load(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """Every point's epoch rows, with all of the point's grid values as columns."""
    frames = []
    for run_dir in run_dirs:
        epochs, _, info = analysis.load_point(run_dir)
        for key, value in info["params"].items():
            if key not in epochs.columns:
                epochs[key] = value
        frames.append(epochs)
    if not frames:
        return pd.DataFrame(columns=[*AXES, "zero_grad", "seed", "epoch"])
    return pd.concat(frames, ignore_index=True)


def first_departure(reference: pd.DataFrame, twin: pd.DataFrame) -> int | None:
    """The first epoch after which the two runs' parameters differ bitwise; None if never.

    ``reference``/``twin``: one seed's epoch rows each. A run that stopped earlier (diverged)
    departs at the first epoch the other one has alone.
    """
    a = reference.set_index("epoch")["params_sha256"]
    b = twin.set_index("epoch")["params_sha256"]
    for epoch in sorted(set(a.index) | set(b.index)):
        if epoch not in a.index or epoch not in b.index or a[epoch] != b[epoch]:
            return int(epoch)
    return None


def first_live_epoch(*runs: pd.DataFrame) -> int | None:
    """The first epoch in which any of the runs met an exact zero with a non-zero upstream
    gradient (epoch e counts the training steps of epoch e)."""
    epochs = [int(e) for run in runs for e in run.loc[run["live_exact_zeros"] > 0, "epoch"]]
    return min(epochs) if epochs else None


def pairs(epochs: pd.DataFrame, reference: float = REFERENCE) -> pd.DataFrame:
    """One row per (grid point with ``zero_grad`` != ``reference``, seed) that has a twin.

    Columns: the grid axes, ``zero_grad``, ``seed``, ``departs``, ``first_departure_epoch``,
    ``first_live_epoch``, ``unexplained`` (departed before either run met a live exact zero:
    non-deterministic kernels, never expected), ``live_exact_zeros`` (the reference run's
    total), ``both_finished`` and ``accuracy_difference`` (final val accuracy, twin minus
    reference, NaN unless both finished).
    """
    if "params_sha256" not in epochs.columns:
        raise ValueError("epoch rows carry no params_sha256: retrain with this relulab version")
    kinked = epochs[epochs["zero_grad"].notna()]
    axes = [a for a in AXES if a in kinked.columns]
    rows = []
    for key, group in kinked.groupby(axes, sort=False, dropna=False):
        by_value = {float(z): part for z, part in group.groupby("zero_grad")}
        if reference not in by_value:
            continue
        base = by_value[reference]
        for value, part in by_value.items():
            if value == reference:
                continue
            for seed, twin in part.groupby("seed"):
                ref = base[base["seed"] == seed]
                if ref.empty:
                    continue
                ref, twin = ref.sort_values("epoch"), twin.sort_values("epoch")
                departure = first_departure(ref, twin)
                live = first_live_epoch(ref, twin)
                finished = (ref["final_status"].iloc[-1] != "diverged") and (
                    twin["final_status"].iloc[-1] != "diverged"
                )
                difference = (
                    float(twin["val_accuracy"].iloc[-1] - ref["val_accuracy"].iloc[-1])
                    if finished
                    else math.nan
                )
                rows.append(
                    {
                        **dict(zip(axes, key if isinstance(key, tuple) else (key,), strict=True)),
                        "zero_grad": value,
                        "seed": int(seed),
                        "departs": departure is not None,
                        "first_departure_epoch": departure,
                        "first_live_epoch": live,
                        "unexplained": departure is not None and (live is None or live > departure),
                        "live_exact_zeros": int(ref["live_exact_zeros"].sum()),
                        "both_finished": finished,
                        "accuracy_difference": difference,
                    }
                )
    return pd.DataFrame(rows)


def control_pairs(epochs: pd.DataFrame, controls: pd.DataFrame) -> pd.DataFrame:
    """One row per (control point, seed) that has its unperturbed run in ``epochs``.

    Columns: the grid axes, ``seed``, ``departs`` (final weights differ bitwise from the
    unperturbed run's), ``both_finished`` and ``accuracy_difference`` (final val accuracy,
    control minus unperturbed, NaN unless both finished).
    """
    axes = [a for a in [*AXES, "zero_grad"] if a in controls.columns]
    rows = []
    for key, group in controls.groupby(axes, sort=False, dropna=False):
        values = dict(zip(axes, key if isinstance(key, tuple) else (key,), strict=True))
        same = np.ones(len(epochs), dtype=bool)
        for axis, value in values.items():
            same &= (epochs[axis] == value).to_numpy()
        base = epochs[same]
        for seed, run in group.groupby("seed"):
            ref = base[base["seed"] == seed].sort_values("epoch")
            if ref.empty:
                continue
            run = run.sort_values("epoch")
            finished = (ref["final_status"].iloc[-1] != "diverged") and (
                run["final_status"].iloc[-1] != "diverged"
            )
            rows.append(
                {
                    **values,
                    "seed": int(seed),
                    "departs": run["params_sha256"].iloc[-1] != ref["params_sha256"].iloc[-1],
                    "both_finished": finished,
                    "accuracy_difference": (
                        float(run["val_accuracy"].iloc[-1] - ref["val_accuracy"].iloc[-1])
                        if finished
                        else math.nan
                    ),
                }
            )
    return pd.DataFrame(rows)


def signed_points(differences: Iterable[float], seeds: Iterable[int]) -> str:
    """``seed 3: +1.20`` per seed (accuracy differences in percentage points), ``; ``-joined."""
    return "; ".join(
        f"seed {int(s)}: {100 * d:+.2f}"
        for s, d in zip(seeds, differences, strict=True)
        if math.isfinite(d)
    )


def _max_abs(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.abs().max()) if len(values) else math.nan


def control_summary(paired: pd.DataFrame) -> dict:
    """The control columns of one grid point's control pairs."""
    if paired.empty:
        return dict.fromkeys(CONTROL_COLUMNS, math.nan) | {
            "control_seeds": 0,
            "control_accuracy_differences": "",
        }
    finished = paired[paired["both_finished"]]
    return {
        "control_seeds": len(paired),
        "control_fraction_departed": float(paired["departs"].mean()),
        "control_accuracy_difference_mean": (
            float(finished["accuracy_difference"].mean()) if len(finished) else math.nan
        ),
        "control_accuracy_difference_max_abs": _max_abs(finished["accuracy_difference"]),
        "control_accuracy_differences": signed_points(
            finished["accuracy_difference"], finished["seed"]
        ),
    }


def effect_table(
    epochs: pd.DataFrame, reference: float = REFERENCE, controls: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The zero_grad effect table: one row per grid point with ``zero_grad`` != ``reference``
    that has twins (``COLUMNS``).

    ``controls``: the epoch rows of the 1-ulp control runs (``load`` of their folders); each
    twin row gets the control of its ``reference`` point (``control_*`` columns).
    """
    paired = pairs(epochs, reference)
    controlled = (
        control_pairs(epochs, controls)
        if controls is not None and len(controls)
        else pd.DataFrame()
    )
    if paired.empty:
        return pd.DataFrame(columns=COLUMNS)
    axes = [a for a in AXES if a in paired.columns]
    rows = []
    for key, group in paired.groupby([*axes, "zero_grad"], sort=False, dropna=False):
        values = dict(zip([*axes, "zero_grad"], key, strict=True))
        n, departed = len(group), int(group["departs"].sum())
        low, high = wilson_interval(departed, n)
        epochs_departed = group["first_departure_epoch"].dropna().astype(float)
        finished = group[group["both_finished"]]
        mean, half = analysis.mean_ci95(finished["accuracy_difference"])
        departed_rows = finished[finished["departs"]]
        control = _control_of(controlled, values, axes, reference)
        rows.append(
            {
                **values,
                "reference_zero_grad": reference,
                "variant": analysis.variant_label(values["activation"], values["zero_grad"]),
                "seeds": n,
                "departed": departed,
                "fraction_departed": departed / n,
                "departed_ci_low": low,
                "departed_ci_high": high,
                "first_departure_epoch_min": (
                    float(epochs_departed.min()) if len(epochs_departed) else math.nan
                ),
                "first_departure_epoch_median": (
                    float(epochs_departed.median()) if len(epochs_departed) else math.nan
                ),
                "live_exact_zeros_mean": float(group["live_exact_zeros"].mean()),
                "unexplained_departures": int(group["unexplained"].sum()),
                "both_finished": len(finished),
                "accuracy_difference_mean": mean,
                "accuracy_difference_ci_low": mean - half,
                "accuracy_difference_ci_high": mean + half,
                "departed_accuracy_differences": signed_points(
                    departed_rows["accuracy_difference"], departed_rows["seed"]
                ),
                "departed_accuracy_difference_max_abs": _max_abs(
                    departed_rows["accuracy_difference"]
                ),
                **control_summary(control),
            }
        )
    table = pd.DataFrame(rows)
    table = table[[c for c in COLUMNS if c in table.columns]]
    keys = [*[a for a in AXES if a in table.columns], "zero_grad"]
    return table.sort_values(keys, key=_precision_order).reset_index(drop=True)


def _control_of(
    controlled: pd.DataFrame, values: dict, axes: list[str], reference: float
) -> pd.DataFrame:
    """The control pairs of the reference point of a twin row (same axes, f'(0)=reference)."""
    if controlled.empty:
        return controlled
    same = controlled["zero_grad"] == reference
    for axis in axes:
        if axis in controlled.columns:
            same &= controlled[axis] == values[axis]
    return controlled[same]


def _precision_order(column: pd.Series) -> pd.Series:
    """Sort key: precisions from the widest to the narrowest, other columns as they are."""
    if column.name != "precision":
        return column
    return column.map({p: i for i, p in enumerate(PRECISIONS)}).fillna(len(PRECISIONS))
