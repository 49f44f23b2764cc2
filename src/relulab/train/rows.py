"""The rows training writes, defined once: one epoch row per seed and epoch (``epochs.csv``), one
layer row per seed, epoch and hidden layer (``layers.csv``).

The training core builds its rows from ``EpochRow`` and ``LayerRow``; the job writes them in
this order (``write_epochs``, ``write_layers``); the MLflow tracker logs their ``*_METRICS``;
the table loaders read them back (``read_epochs``, ``read_layers``) and select their columns by
these names. A column added here reaches every one of them. The module imports neither torch nor
pandas at import time, so that whatever only needs the names stays light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# The member's grid point: rows of points trained together as one model carry it until the
# job splits them into each point's files.
POINT = "point"


@dataclass
class EpochRow:
    """One seed after one epoch (epoch 0: before training), measured on the whole data."""

    seed: int
    epoch: int
    step: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    dead_fraction: float
    inactive_fraction: float
    exact_zeros: int
    live_exact_zeros: int
    dead_at_inference_fraction: float
    inactive_at_inference_fraction: float
    status: str  # "ok", or "diverged" at the epoch it diverged
    params_sha256: str


@dataclass
class LayerRow:
    """One hidden layer of one seed after one epoch; fractions are of the layer's units."""

    seed: int
    epoch: int
    layer: int  # 1-based, in forward order
    dead_fraction: float
    inactive_fraction: float
    ever_dead_fraction: float
    revived_fraction: float
    permanently_dead_fraction: float
    born_dead_fraction: float
    born_dead_revived_fraction: float
    born_dead_permanent_fraction: float
    died_in_training_fraction: float
    died_in_training_revived_fraction: float
    died_in_training_permanent_fraction: float
    sparsity: float
    grad_norm: float  # NaN at epoch 0 (no step yet)
    dead_at_inference_fraction: float
    inactive_at_inference_fraction: float
    pre_activation_grad_rms: float
    # The same dynamics by the step-level definition (``relulab.train.step_death``): a unit is
    # dead over an epoch when its local derivative was 0 on every example of every training
    # step of that epoch. Revived: dead over an earlier epoch and not over this one; born dead:
    # dead over the first epoch. NaN at epoch 0 (no step yet).
    step_dead_fraction: float = math.nan
    step_ever_dead_fraction: float = math.nan
    step_revived_fraction: float = math.nan
    step_permanently_dead_fraction: float = math.nan
    step_born_dead_fraction: float = math.nan
    step_born_dead_revived_fraction: float = math.nan
    step_born_dead_permanent_fraction: float = math.nan
    step_died_in_training_fraction: float = math.nan
    step_died_in_training_revived_fraction: float = math.nan
    step_died_in_training_permanent_fraction: float = math.nan


def _names(row_type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(row_type))


EPOCH_COLUMNS = _names(EpochRow)
LAYER_COLUMNS = _names(LayerRow)
# What identifies a row, and what describes it without being a number to chart.
EPOCH_KEYS = ("seed", "epoch", "step")
LAYER_KEYS = ("seed", "epoch", "layer")
EPOCH_LABELS = ("status", "params_sha256")
# The step-level columns: ``STEP_PREFIX`` + a snapshot column's name.
STEP_PREFIX = "step_"
# Of them, MLflow charts the two a reader follows during training (each metric value costs a
# store write; the causes are in layers.csv and the study's tables).
STEP_CHARTED = ("step_dead_fraction", "step_revived_fraction")
# The numbers MLflow charts, in column order.
EPOCH_METRICS = tuple(c for c in EPOCH_COLUMNS if c not in (*EPOCH_KEYS, *EPOCH_LABELS))
LAYER_METRICS = tuple(
    c
    for c in LAYER_COLUMNS
    if c not in LAYER_KEYS and (not c.startswith(STEP_PREFIX) or c in STEP_CHARTED)
)
# Read as text whatever they look like (a hash may be all digits).
TEXT_COLUMNS = {"status": str, "params_sha256": str, POINT: str}

# Per hidden layer: the fraction of its units dead for each cause of death, the columns of
# ``relulab.nn.probes.CAUSE_COLUMNS`` (``tests/test_rows.py`` holds them equal).
CAUSE_FRACTIONS = tuple(c for c in LAYER_COLUMNS if c.startswith(("born_dead", "died_in_")))
STEP_FRACTIONS = tuple(c for c in LAYER_COLUMNS if c.startswith(STEP_PREFIX))


def epoch_row(point: str | None = None, **values) -> dict:
    """An ``EpochRow`` as the dict a history holds, with its ``point`` first when given."""
    return _with_point(point, vars(EpochRow(**values)))


def layer_row(point: str | None = None, **values) -> dict:
    """A ``LayerRow`` as the dict a history holds, with its ``point`` first when given."""
    return _with_point(point, vars(LayerRow(**values)))


def _with_point(point: str | None, row: dict) -> dict:
    return {POINT: point, **row} if point is not None else dict(row)


def write_epochs(rows: list[dict], path: str | Path) -> None:
    """``epochs.csv``: the rows in ``EPOCH_COLUMNS`` order."""
    import pandas as pd

    pd.DataFrame(rows, columns=list(EPOCH_COLUMNS)).to_csv(path, index=False)


def write_layers(rows: list[dict], path: str | Path) -> None:
    """``layers.csv``: the rows in ``LAYER_COLUMNS`` order."""
    import pandas as pd

    pd.DataFrame(rows, columns=list(LAYER_COLUMNS)).to_csv(path, index=False)


def read_epochs(path: str | Path) -> pd.DataFrame:
    """An ``epochs.csv`` (of any relulab version: columns it lacks are simply absent)."""
    import pandas as pd

    return pd.read_csv(path, dtype=TEXT_COLUMNS)


def read_layers(path: str | Path) -> pd.DataFrame:
    """A ``layers.csv`` (of any relulab version: columns it lacks are simply absent)."""
    import pandas as pd

    return pd.read_csv(path, dtype=TEXT_COLUMNS)
