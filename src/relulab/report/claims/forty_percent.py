"""Claim: "as much as 40 % of your network can be dead" at a high learning rate (CS231n).

Rule: over the ReLU (f'(0)=0) grid points where the network learns, take the one whose dead
fraction has the highest lower 95 % bound (the strongest setting). Supported if that lower
bound is >= 40 %; refuted if every such point's upper bound is < 40 %; otherwise not testable
(an interval contains 40 %). The test behind it: one-sided t over seeds.
"""

from __future__ import annotations

from relulab.report.claims.common import at_least, interval_text, point_labels
from relulab.report.evidence.runs import TrainingEvidence
from relulab.report.outcome import Outcome, Verdict, not_testable

KEY = "forty_percent"
CLAIM = "As much as 40 % of a network can be dead when the learning rate is too high (CS231n)"
THRESHOLD = 0.40


def judge(training: TrainingEvidence) -> Outcome:
    relu = training.where(activation="relu", zero_grad=0.0)
    if not relu:
        return not_testable(CLAIM, KEY, "ReLU with f'(0)=0 was not trained")
    judged = [p for p in relu if p.learns]
    if not judged:
        return not_testable(CLAIM, KEY, "ReLU learned at no grid point (see the rule)")
    names = dict(zip([p.point for p in judged], point_labels([p.row for p in judged]), strict=True))
    strongest = max(judged, key=lambda p: (p.dead_interval.low, p.dead_interval.mean))
    dead = strongest.dead_interval
    measured = (
        f"strongest: {interval_text(dead)} dead at {names[strongest.point]} (accuracy "
        f"{interval_text(strongest.accuracy_interval)}, {strongest.finished} of "
        f"{strongest.seeds} seeds finished); judged at {len(judged)} of {len(relu)} ReLU points"
    )
    headline = f"{interval_text(dead)} dead ({names[strongest.point]})"
    setting = f"ReLU (f'(0)=0) where it learns; strongest at {names[strongest.point]}"
    if at_least(dead.low, THRESHOLD):
        return Outcome(
            CLAIM,
            Verdict.SUPPORTED,
            setting,
            measured,
            "the strongest setting's lower bound is >= 40 %",
            KEY,
            headline=headline,
            p_value=strongest.dead_above(THRESHOLD),
        )
    if all(p.dead_interval.known and not at_least(p.dead_interval.high, THRESHOLD) for p in judged):
        return Outcome(
            CLAIM,
            Verdict.REFUTED,
            setting,
            measured,
            "every learning setting's upper bound is below 40 %",
            KEY,
            headline=headline,
            p_value=max(p.dead_below(THRESHOLD) for p in judged),
        )
    return Outcome(
        CLAIM,
        Verdict.NOT_TESTABLE,
        setting,
        measured,
        "no learning setting's interval lies above 40 %, and not all lie below it",
        KEY,
        headline=headline,
    )
