"""Claim: deep narrow ReLU networks are born dead (Lu et al. 2019).

Untrained ReLU networks of the narrowest width, per init: the fraction with a hidden layer dead
on every training example (Wilson 95 %) at the deepest against the shallowest depth. Deepest
interval wholly above: supported for that init; wholly below: refuted; overlapping: not
testable. Combined over inits: all testable agree -> that, else mixed.
"""

from __future__ import annotations

from relulab.report import labels
from relulab.report.claims.common import combine, interval_text
from relulab.report.evidence.questions import BornDeadDepths
from relulab.report.outcome import NotMeasured, Outcome, Verdict, not_testable

KEY = "born_dead"
CLAIM = "Deep narrow ReLU networks are born dead (Lu et al. 2019)"


def judge(rows: tuple[BornDeadDepths, ...] | NotMeasured) -> Outcome:
    if isinstance(rows, NotMeasured):
        return not_testable(CLAIM, KEY, rows)
    verdicts, parts = [], []
    for r in rows:
        (d0, shallow), (d1, deep) = r.shallow, r.deep
        if deep.above(shallow):
            verdict = Verdict.SUPPORTED
        elif deep.below(shallow):
            verdict = Verdict.REFUTED
        else:
            verdict = Verdict.NOT_TESTABLE
        verdicts.append(verdict)
        parts.append(
            f"{labels.axis_text('init', r.init)}: {interval_text(shallow)} at depth {d0}, "
            f"{interval_text(deep)} at depth {d1}"
        )
    width, networks = rows[0].width, rows[0].networks
    return Outcome(
        CLAIM,
        combine(verdicts),
        f"untrained ReLU MLPs of width {width}, {networks} initialisations per depth",
        "networks with a dead hidden layer: " + "; ".join(parts),
        "deepest interval wholly above the shallowest: supported (per init, then combined)",
        KEY,
        headline="; ".join(parts),
    )
