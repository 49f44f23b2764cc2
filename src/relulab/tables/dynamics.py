"""Death over time, revival by cause and gradient flow, per grid point, from the per-layer rows.

Inputs are the rows of ``results/tables/layers.csv`` (one per seed, epoch and hidden layer, with
the point's parameters). Every number is a statistic over the finished seeds of a grid point
(mean and 95 % half-width); diverged seeds are counted, never averaged in. Hidden layers of an
MLP have equal width, so the mean over layers of a per-layer fraction is the fraction of all
hidden units.

Units that die have two causes (SCIENCE.md): *born dead* (dead at epoch 0, an effect of the
initialisation) and *died in training* (an effect of the learning rate); revival and permanence
are reported for each. Death is counted by two definitions, side by side: at the epoch-end
snapshots (the ``*_fraction`` columns) and over each epoch's training steps (``step_*``: dead
when the local derivative was 0 on every example of every step of the epoch; see
``relulab.train.step_death``). Statistics pooled over grid points count a run once when its
f'(0) twin is bitwise the same run (``distinct_runs``). Gradient flow is measured on the
backward signal at the pre-activations (``pre_activation_grad_rms``, RMS of dL/dz over the
training set); the weight-gradient norms, which also scale with each layer's input size, are a
second view.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from relulab.tables.summary import POINT_COLUMNS, mean_ci95
from relulab.train.rows import CAUSE_FRACTIONS, LAYER_COLUMNS, STEP_FRACTIONS, STEP_PREFIX

# Layer columns (``relulab.train.rows``) that studies of older relulab versions may lack.
OPTIONAL_FRACTIONS = (
    *CAUSE_FRACTIONS,
    "dead_at_inference_fraction",
    "inactive_at_inference_fraction",
    *STEP_FRACTIONS,
)
FRACTIONS = tuple(
    c
    for c in LAYER_COLUMNS
    if (c.endswith("_fraction") or c == "sparsity") and c not in OPTIONAL_FRACTIONS
)
FIRST_LAYER = "first hidden layer"
DEEPER_LAYERS = "deeper hidden layers"
# Cause of death -> column stem in layers.csv; "any" pools both causes.
CAUSES = {"born dead": "born_dead", "died in training": "died_in_training"}
ANY_CAUSE = "any"
# The settings every number is stated with, besides the grid point's own values.
SETTING_COLUMNS = ("optimizer", "init", "batch_norm")
# Grid values two f'(0) twins share: everything but zero_grad.
TWIN_AXES = ("activation", "lr", "optimizer", "init", "precision", "depth", "batch_norm")


def _point_keys(frame: pd.DataFrame) -> list[str]:
    keys = [*POINT_COLUMNS, "optimizer", "init", "variant"]
    return [c for c in dict.fromkeys(keys) if c in frame.columns]


def _fractions(frame: pd.DataFrame) -> list[str]:
    return [*FRACTIONS, *(c for c in OPTIONAL_FRACTIONS if c in frame.columns)]


def _finished(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["final_status"] != "diverged"]


def layer_group(layer: int) -> str:
    """The group of hidden layer ``layer``: the first one (it sees the fixed data) or deeper."""
    return FIRST_LAYER if int(layer) == 1 else DEEPER_LAYERS


def network(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (point, seed, epoch): each fraction over all hidden units (mean over layers)."""
    keys = [*_point_keys(layers), "seed", "epoch", "final_status"]
    return layers.groupby(keys, as_index=False, dropna=False)[_fractions(layers)].mean()


def by_layer_group(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (point, seed, epoch, layer group): each fraction over the group's units."""
    frame = layers.assign(layer_group=layers["layer"].map(layer_group))
    keys = [*_point_keys(layers), "seed", "epoch", "final_status", "layer_group"]
    return frame.groupby(keys, as_index=False, dropna=False)[_fractions(layers)].mean()


def _add(row: dict, name: str, values) -> None:
    mean, half = mean_ci95(values)
    row[f"{name}_mean"] = mean
    row[f"{name}_ci95"] = half


def geometric_mean_ci95(values) -> tuple[float, float, float]:
    """Geometric mean of positive ratios and its 95 % interval (Student t on the logs).

    Ratios that are 0, negative or not finite cannot enter a geometric mean and are left out;
    one ratio gives an interval of NaN, none gives NaN throughout.
    """
    values = np.asarray(values, dtype=float)
    logs = np.log(values[np.isfinite(values) & (values > 0)])
    mean, half = mean_ci95(logs)
    if not math.isfinite(mean):
        return math.nan, math.nan, math.nan
    if not math.isfinite(half):
        return math.exp(mean), math.nan, math.nan
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def distinct_runs(epochs: pd.DataFrame) -> pd.DataFrame:
    """Per (point, seed): whether the run counts in pooled statistics, and whose copy it is.

    Runs that differ only in f'(0) and have the same parameter hash at every epoch are bitwise
    the same run; the one with the smallest f'(0) counts (``counted``), the others name it in
    ``copy_of``. Without ``params_sha256`` every run counts.
    """
    runs = epochs.sort_values(["point", "seed", "epoch"])
    rows = []
    for (point, seed), run in runs.groupby(["point", "seed"], sort=False):
        first = run.iloc[0]
        hashes = tuple(run["params_sha256"]) if "params_sha256" in run else (point,)
        key = (*(first[c] for c in TWIN_AXES if c in run.columns), int(seed), hashes)
        zero_grad = first["zero_grad"] if "zero_grad" in run.columns else math.nan
        rows.append({"point": point, "seed": int(seed), "zero_grad": zero_grad, "key": repr(key)})
    table = pd.DataFrame(rows, columns=["point", "seed", "zero_grad", "key"])
    table = table.sort_values(["zero_grad", "point"], na_position="first", kind="stable")
    original = table.groupby("key", sort=False)["point"].transform("first")
    table["counted"] = original == table["point"]
    table["copy_of"] = original.where(~table["counted"])
    return table.drop(columns=["key", "zero_grad"]).sort_values(["point", "seed"])


def death_table(layers: pd.DataFrame) -> pd.DataFrame:
    """One row per grid point: how many units died, when, and how many came back.

    - ``born_dead``: dead at initialisation (epoch 0), all hidden units;
    - ``peak_dead``: the largest dead fraction of the whole network at any epoch, and
      ``peak_epoch`` the median epoch where it occurred;
    - ``final_*``: at the last epoch (dead, inactive, ever dead, revived, permanently dead,
      and, where measured, each cause of death and the dead fraction at inference);
    - ``worst_layer_dead``: the largest dead fraction of any single hidden layer at any epoch;
    - ``first_layer_*`` / ``deeper_*``: ever dead and revived at the last epoch, by layer group.
    """
    whole = network(layers)
    groups = by_layer_group(layers)
    optional = [c.removesuffix("_fraction") for c in OPTIONAL_FRACTIONS if c in layers.columns]
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
        if "dead_at_inference_fraction" in first:
            _add(row, "born_dead_at_inference", first["dead_at_inference_fraction"])
        _add(row, "peak_dead", peaks["dead_fraction"])
        row["peak_epoch_median"] = float(np.median(peaks["epoch"])) if len(peaks) else math.nan
        for name in ("dead", "inactive", "ever_dead", "revived", "permanently_dead", *optional):
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


def _cause_columns(
    frame: pd.DataFrame, cause: str, prefix: str = ""
) -> tuple[str, str, str] | None:
    """The (died, revived, permanent) columns of a cause, or None where it was not measured;
    ``prefix`` ``STEP_PREFIX`` names those of the step-level definition."""
    if cause == ANY_CAUSE:
        stems = ("ever_dead", "revived", "permanently_dead")
    else:
        stem = CAUSES[cause]
        stems = (stem, f"{stem}_revived", f"{stem}_permanent")
    names = tuple(f"{prefix}{name}_fraction" for name in stems)
    return names if all(n in frame.columns for n in names) else None


def _step_measured(frame: pd.DataFrame, cause: str) -> tuple[str, str, str] | None:
    """The step-level columns of a cause where every row has them (runs trained at least an
    epoch by a relulab that records them), else None."""
    names = _cause_columns(frame, cause, STEP_PREFIX)
    return names if names is not None and frame[list(names)].notna().all().all() else None


def _last_rows(layers: pd.DataFrame) -> pd.DataFrame:
    """Each finished seed's last epoch, one row per hidden layer."""
    finished = _finished(layers).sort_values(["point", "seed", "epoch"])
    return finished.groupby(["point", "seed", "layer"]).tail(1)


def _causes(frame: pd.DataFrame) -> list[str]:
    return [c for c in (*CAUSES, ANY_CAUSE) if _cause_columns(frame, c) is not None]


def _shares(died: pd.Series, revived: pd.Series) -> pd.Series:
    """Per run, the share of the units that died that are alive again (runs where some died)."""
    some = died > 0
    return revived[some] / died[some]


def revival_table(layers: pd.DataFrame) -> pd.DataFrame:
    """One row per grid point, hidden layer and cause of death, at the last epoch.

    ``cause`` is "born dead" (dead at epoch 0), "died in training" or "any" (both). ``died``,
    ``revived`` and ``permanent`` are fractions of the layer's units (means over finished
    seeds); ``revived_share`` is total revived units over total units that died of that cause
    across those seeds (NaN when none died), ``runs_with_deaths`` the seeds where some did.
    These count death at epoch-end snapshots; the ``step_*`` columns beside them count it over
    each epoch's training steps (born dead: dead over the first epoch), where measured.
    """
    last = _last_rows(layers)
    rows = []
    for (_, layer), group in last.groupby(["point", "layer"], sort=False):
        for cause in _causes(group):
            row = {key: group.iloc[0][key] for key in _point_keys(group)}
            row["layer"] = int(layer)
            row["layer_group"] = layer_group(layer)
            row["cause"] = cause
            row["seeds"] = len(group)
            _add_revival(row, group, _cause_columns(group, cause))
            step = _step_measured(group, cause)
            if step is not None:
                _add_revival(row, group, step, STEP_PREFIX)
            rows.append(row)
    stats = [f"{n}_{s}" for n in ("died", "revived", "permanent") for s in CI]
    step_stats = [f"{STEP_PREFIX}{name}" for name in ("runs_with_deaths", *stats, "revived_share")]
    columns = [
        *_point_keys(layers),
        "layer",
        "layer_group",
        "cause",
        "seeds",
        "runs_with_deaths",
        *stats,
        "revived_share",
        *step_stats,
    ]
    return _sorted(_table(rows, columns), extra=["layer", "cause"])


def _add_revival(
    row: dict, group: pd.DataFrame, columns: tuple[str, str, str], prefix: str = ""
) -> None:
    """``revival_table``'s statistics of one definition's (died, revived, permanent) columns."""
    died, revived, permanent = columns
    row[f"{prefix}runs_with_deaths"] = int((group[died] > 0).sum())
    _add(row, f"{prefix}died", group[died])
    _add(row, f"{prefix}revived", group[revived])
    _add(row, f"{prefix}permanent", group[permanent])
    total = group[died].sum()
    row[f"{prefix}revived_share"] = group[revived].sum() / total if total > 0 else math.nan


def revival_by_cause(
    layers: pd.DataFrame, counted: pd.DataFrame | None = None, by: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Revival pooled over grid points: one row per setting in ``by``, cause and layer group.

    Each run (point and seed) counts once, and a run whose f'(0) twin is bitwise the same
    (``counted`` from ``distinct_runs``) is left out. Per run, the units that died of a cause in
    the layer group and the share of them alive again at the last epoch; the row gives the
    runs, those with deaths, the mean fraction that died, and the mean share revived over the
    runs with deaths (95 % half-width), with the pooled share (revived units over dead units).
    The ``step_*`` columns give the same by the step-level definition, where measured.
    """
    last = _last_rows(layers)
    if counted is not None:
        keep = counted.loc[counted["counted"], ["point", "seed"]]
        last = last.merge(keep, on=["point", "seed"])
    last = last.assign(layer_group=last["layer"].map(layer_group))
    by = [c for c in by if c in last.columns]
    rows = []
    for cause in _causes(last):
        columns = _cause_columns(last, cause)
        for keys, group in last.groupby([*by, "layer_group"], sort=True, dropna=False):
            row = dict(zip([*by, "layer_group"], keys, strict=True))
            row["cause"] = cause
            row["runs"] = group[["point", "seed"]].drop_duplicates().shape[0]
            _add_pooled_revival(row, group, columns)
            step = _step_measured(group, cause)
            if step is not None:
                _add_pooled_revival(row, group, step, STEP_PREFIX)
            rows.append(row)
    return pd.DataFrame(rows)


def _add_pooled_revival(
    row: dict, group: pd.DataFrame, columns: tuple[str, str, str], prefix: str = ""
) -> None:
    """``revival_by_cause``'s statistics of one definition's (died, revived) columns, per run."""
    died, revived, _ = columns
    per_run = group.groupby(["point", "seed"])[[died, revived]].mean()
    row[f"{prefix}runs_with_deaths"] = int((per_run[died] > 0).sum())
    _add(row, f"{prefix}died", per_run[died])
    _add(row, f"{prefix}revived_share", _shares(per_run[died], per_run[revived]))
    total = per_run[died].sum()
    row[f"{prefix}revived_share_pooled"] = per_run[revived].sum() / total if total else math.nan


def _at_epoch(frame: pd.DataFrame, epoch: int | None) -> pd.DataFrame:
    if epoch is None:
        last_epoch = frame.groupby(["point", "seed"])["epoch"].transform("max")
        return frame[frame["epoch"] == last_epoch]
    return frame[frame["epoch"] == epoch]


def _ratio_to_last(frame: pd.DataFrame, column: str) -> pd.Series:
    """Per row, ``column`` over the same seed's value at its last hidden layer."""
    deepest = frame.groupby(["point", "seed"])["layer"].transform("max")
    last = frame[column].where(frame["layer"] == deepest)
    last = last.groupby([frame["point"], frame["seed"]]).transform("max")
    return frame[column] / last


def first_last_ratios(layers: pd.DataFrame, column: str, epoch: int | None) -> pd.DataFrame:
    """Per (point, seed): ``column`` at the first hidden layer over the last, at ``epoch``."""
    chosen = _at_epoch(_finished(layers).dropna(subset=[column]), epoch)
    chosen = chosen.assign(ratio=_ratio_to_last(chosen, column))
    first = chosen[chosen["layer"] == 1]
    return first[[*_point_keys(first), "seed", "ratio"]].reset_index(drop=True)


def gradient_table(
    layers: pd.DataFrame, epoch: int | None = 0, weight_epoch: int | None = 1
) -> pd.DataFrame:
    """One row per grid point and hidden layer: the backward signal and its ratio to the last
    hidden layer's, per seed, as a geometric mean over seeds with a 95 % interval.

    The measure (SCIENCE.md, Q3) is ``pre_activation_grad_rms``, the RMS of dL/dz over the
    training set, at ``epoch`` (0: the untrained network the vanishing-gradient argument is
    about; ``None``: each seed's last epoch). The weight-gradient norm, mean over the steps of
    ``weight_epoch`` (1: the first epoch of training), is the second view (``weight_*``).
    ``ratio_to_last`` below 1 means the signal shrinks on its way back to the input.
    """
    finished = _finished(layers)
    tables = []
    for column, at, prefix in (
        ("pre_activation_grad_rms", epoch, ""),
        ("grad_norm", weight_epoch, "weight_"),
    ):
        if column not in finished.columns:
            continue
        chosen = _at_epoch(finished.dropna(subset=[column]), at)
        chosen = chosen.assign(ratio=_ratio_to_last(chosen, column))
        rows = []
        for (_, layer), group in chosen.groupby(["point", "layer"], sort=False):
            row = {key: group.iloc[0][key] for key in _point_keys(group)}
            row["layer"] = int(layer)
            row[f"{prefix}epoch"] = "last" if at is None else at
            row[f"{prefix}seeds"] = len(group)
            _add(row, column, group[column])
            gmean, low, high = geometric_mean_ci95(group["ratio"])
            row[f"{prefix}ratio_to_last_gmean"] = gmean
            row[f"{prefix}ratio_to_last_low"] = low
            row[f"{prefix}ratio_to_last_high"] = high
            rows.append(row)
        if rows:
            tables.append(pd.DataFrame(rows))
    if not tables:
        stats = [f"pre_activation_grad_rms_{s}" for s in CI]
        ratios = [f"ratio_to_last_{s}" for s in ("gmean", "low", "high")]
        return _table([], [*_point_keys(layers), "layer", "epoch", "seeds", *stats, *ratios])
    table = tables[0]
    for other in tables[1:]:
        keys = [c for c in [*_point_keys(other), "layer"] if c in table.columns]
        table = table.merge(other, on=keys, how="outer")
    return _sorted(table, extra=["layer"])


CI = ("mean", "ci95")


def _table(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """``rows`` as a table; with no rows (every seed diverged) still one with its columns, so
    that it reads back from CSV and later steps find the columns they select."""
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def _sorted(table: pd.DataFrame, extra: list[str] | None = None) -> pd.DataFrame:
    if table.empty:
        return table
    order = [
        c
        for c in ("optimizer", "init", "batch_norm", "activation", "zero_grad", "lr", "precision")
        if c in table
    ]
    order += ["depth"] if "depth" in table else []
    return table.sort_values(order + (extra or [])).reset_index(drop=True)
