"""Claim: ReLU'(0) does not change what training reaches (final accuracy).

The f'(0) twins (same seed and data order, f'(0) != 0 against 0) are bitwise copies until an
exact zero meets a non-zero upstream gradient; those that parted are compared, as a
distribution, with the 1-ulp controls (the same seeds at f'(0)=0 with one weight moved by one
unit in the last place) at the same points: the absolute final-accuracy differences of parted
twins against those of the controls, one-sided Mann-Whitney test that the twins' are larger.

Rule: no twin parted -> supported (f'(0) never reached training). Otherwise, at the points
whose twins parted and that have controls: twins larger than controls (the test) -> refuted;
not larger -> supported (f'(0) changes trajectories as any last-bit change does, not the
distribution). Points whose twins parted without a control are not testable and named.
"""

from __future__ import annotations

import numpy as np

from relulab.report.claims.common import point_labels
from relulab.report.evidence.questions import TwinPoint
from relulab.report.outcome import NotMeasured, Outcome, Verdict, not_testable
from relulab.report.statistics import ALPHA, larger_than

KEY = "fprime_accuracy"
CLAIM = "ReLU'(0) does not change what training reaches (final accuracy)"
MIN_PAIRS = 3


def _points(changes) -> str:
    return f"{100 * np.median(changes):.2f} points" if len(changes) else "n/a"


def judge(twins: tuple[TwinPoint, ...] | NotMeasured) -> Outcome:
    if isinstance(twins, NotMeasured):
        return not_testable(CLAIM, KEY, twins)
    seeds = sum(t.seeds for t in twins)
    departed = sum(t.departed for t in twins)
    setting = f"f'(0) twins at {len(twins)} points, {seeds} seeds (bitwise copies counted once)"
    if departed == 0:
        return Outcome(
            CLAIM,
            Verdict.SUPPORTED,
            setting,
            f"0 of {seeds} twins parted from f'(0)=0",
            "no twin met an exact zero that changed its weights",
            KEY,
            headline=f"0 of {seeds} twins parted",
        )
    parted = [t for t in twins if t.departed]
    controlled = [t for t in parted if not isinstance(t.controls, NotMeasured)]
    names = dict(zip(twins, point_labels([dict(t.row) for t in twins]), strict=True))
    uncontrolled = [names[t] for t in parted if isinstance(t.controls, NotMeasured)]
    twin_changes = np.abs([d for t in controlled for d in t.differences])
    control_changes = np.abs([d for t in controlled for d in t.controls])
    measured = (
        f"{departed} of {seeds} twins parted at {len(parted)} points; at the {len(controlled)} "
        f"with controls, |Δ accuracy| median {_points(twin_changes)} over {len(twin_changes)} "
        f"parted twins vs {_points(control_changes)} over {len(control_changes)} 1-ulp controls"
    )
    headline = (
        f"median |Δ accuracy| {_points(twin_changes)} (parted twins) vs "
        f"{_points(control_changes)} (1-ulp controls)"
    )
    if uncontrolled:
        measured += f"; not testable (no control): {' | '.join(uncontrolled)}"
    if len(twin_changes) < MIN_PAIRS or len(control_changes) < MIN_PAIRS:
        return Outcome(
            CLAIM,
            Verdict.NOT_TESTABLE,
            setting,
            measured,
            f"fewer than {MIN_PAIRS} parted twins or controls at the same points",
            KEY,
        )
    p = larger_than(twin_changes, control_changes)
    if p <= ALPHA:
        return Outcome(
            CLAIM,
            Verdict.REFUTED,
            setting,
            measured + f"; Mann-Whitney p = {p:.2g}",
            "parted twins change accuracy more than 1-ulp controls (one-sided Mann-Whitney)",
            KEY,
            headline=headline,
            p_value=p,
        )
    return Outcome(
        CLAIM,
        Verdict.SUPPORTED,
        setting,
        measured + f"; Mann-Whitney p = {p:.2g}",
        "parted twins change accuracy no more than a 1-ulp change of one weight: f'(0) moves "
        "single trajectories, not the distribution",
        KEY,
        headline=headline,
    )
