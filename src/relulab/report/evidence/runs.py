"""Training runs as evidence: each grid point's seeds, which of them diverged, and whether the
network learned there.

The rules (docs/claims.md):

- **Diverged**: a run whose final training loss is NaN or infinite, or more than
  ``DIVERGED_LOSS_FACTOR`` (2) times the loss of an untrained network, ln(10) for ten classes
  (so above 4.61). Such a run learned nothing the untrained network did not know; its dead
  units are exp underflow or saturation, not dying. Runs the tables call finished can be
  diverged by this rule (an ELU run with train loss 1.5e17).
- **Learns**: at least ``MIN_FINISHED_SEEDS`` (3) seeds did not diverge and the 95 % interval
  of their final validation accuracy lies wholly above chance (10 % for ten classes). A claim
  about training is judged only at grid points where the network learns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from relulab.report import labels
from relulab.report.inputs import with_axes
from relulab.report.statistics import one_sided_t, seed_interval
from relulab.study import grid
from relulab.study.settings import Study

CLASSES = 10
CHANCE = 1 / CLASSES
UNTRAINED_LOSS = math.log(CLASSES)
DIVERGED_LOSS_FACTOR = 2.0
DIVERGED_LOSS = DIVERGED_LOSS_FACTOR * UNTRAINED_LOSS
MIN_FINISHED_SEEDS = 3


def diverged(final_loss: float, status: str = "finished") -> bool:
    """The divergence rule: NaN/inf loss, a run the training marked diverged, or a final loss
    above ``DIVERGED_LOSS``."""
    if status == "diverged" or not math.isfinite(final_loss):
        return True
    return final_loss > DIVERGED_LOSS


@dataclass(frozen=True)
class Interval:
    """A mean over seeds (or a pooled fraction) with its 95 % interval."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def known(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def above(self, other: Interval) -> bool:
        return self.known and other.known and self.low > other.high

    def below(self, other: Interval) -> bool:
        return self.known and other.known and self.high < other.low


def fraction_interval(values) -> Interval:
    return Interval(*seed_interval(values, fraction=True))


@dataclass(frozen=True)
class PointRuns:
    """One grid point's seeds at their last epoch. ``accuracy``, ``dead`` and ``inactive``:
    one value per seed that did not diverge (by this module's rule)."""

    point: str
    axes: tuple[tuple[str, object], ...]
    seeds: int
    diverged: int
    accuracy: tuple[float, ...]
    dead: tuple[float, ...]
    inactive: tuple[float, ...]
    final_loss: tuple[float, ...]

    def axis(self, name: str):
        return dict(self.axes).get(name)

    @property
    def row(self) -> dict:
        return {"point": self.point, **dict(self.axes)}

    @property
    def label(self) -> str:
        return labels.label(self.row, [a for a, _ in self.axes])

    @property
    def finished(self) -> int:
        return self.seeds - self.diverged

    @property
    def accuracy_interval(self) -> Interval:
        return fraction_interval(self.accuracy)

    @property
    def dead_interval(self) -> Interval:
        return fraction_interval(self.dead)

    @property
    def inactive_interval(self) -> Interval:
        return fraction_interval(self.inactive)

    @property
    def learns(self) -> bool:
        accuracy = self.accuracy_interval
        return self.finished >= MIN_FINISHED_SEEDS and accuracy.known and accuracy.low > CHANCE

    @property
    def why_not_judged(self) -> str:
        """Why this point cannot judge a training claim ("" if it can)."""
        if self.finished < MIN_FINISHED_SEEDS:
            return (
                f"{self.finished} of {self.seeds} seeds finished (diverged: NaN/inf or loss > "
                f"{DIVERGED_LOSS:.2f}); {MIN_FINISHED_SEEDS} needed"
            )
        if not self.learns:
            return f"accuracy interval {self.accuracy_interval.low:.1%} not above chance"
        return ""

    def dead_above(self, threshold: float) -> float:
        """p-value of "the mean dead fraction exceeds ``threshold``" (one-sided t over seeds)."""
        return one_sided_t(self.dead, threshold, above=True)

    def dead_below(self, threshold: float) -> float:
        return one_sided_t(self.dead, threshold, above=False)


@dataclass(frozen=True)
class TrainingEvidence:
    """Every grid point's runs (the main grid, the optimizer study and the depth study)."""

    points: tuple[PointRuns, ...]

    def where(self, **values) -> tuple[PointRuns, ...]:
        """The points whose axes equal ``values`` (a list/tuple: any of them)."""
        chosen = []
        for p in self.points:
            keep = True
            for key, value in values.items():
                allowed = value if isinstance(value, (list, tuple, set)) else (value,)
                have = p.axis(key)
                if key == "zero_grad" and have is not None and not _is_nan(have):
                    have = float(have)
                if have not in allowed:
                    keep = False
                    break
            if keep:
                chosen.append(p)
        return tuple(chosen)

    def same_setting(self, point: PointRuns, **values) -> tuple[PointRuns, ...]:
        """The points at ``point``'s setting (every axis but activation and f'(0)), with
        ``values`` as further filters."""
        fixed = {a: v for a, v in point.axes if a not in labels.VARIANT_AXES}
        return self.where(**fixed, **values)


def _is_nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _axis_value(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    return None if _is_nan(value) else value


def training_evidence(epochs: pd.DataFrame, study: Study) -> TrainingEvidence:
    """Per grid point, each seed's last epoch from the study's per-seed rows (``epochs.csv``),
    divergence judged by this module's rule."""
    if epochs.empty:
        return TrainingEvidence(())
    epochs = with_axes(epochs, study)
    axes = [a for a in grid.AXES if a in epochs.columns]
    last = epochs.sort_values(["point", "seed", "epoch"]).groupby(["point", "seed"]).tail(1)
    points = []
    for point, rows in last.groupby("point", sort=True):
        first = rows.iloc[0]
        status = rows.get("final_status", rows.get("status", pd.Series("finished", rows.index)))
        gone = np.array(
            [
                diverged(float(loss), str(s))
                for loss, s in zip(rows["train_loss"], status, strict=True)
            ]
        )
        kept = rows[~gone]
        points.append(
            PointRuns(
                point=str(point),
                axes=tuple((a, _axis_value(first[a])) for a in axes),
                seeds=len(rows),
                diverged=int(gone.sum()),
                accuracy=tuple(kept["val_accuracy"].astype(float)),
                dead=tuple(kept["dead_fraction"].astype(float)),
                inactive=tuple(kept.get("inactive_fraction", kept["dead_fraction"]).astype(float)),
                final_loss=tuple(rows["train_loss"].astype(float)),
            )
        )
    return TrainingEvidence(tuple(points))
