"""The claims made for ReLU, one module each, judged on the study's evidence.

``judge_all`` judges every claim, then adjusts the p-values of the verdicts that rest on a
test for multiplicity across the table (Holm, family-wise 5 %): a verdict whose test is no
longer significant becomes not testable. Verdicts that rest on an exact observation (a bitwise
difference, a revived unit) or on interval separation carry no p-value and are not adjusted.
"""

from __future__ import annotations

from relulab.report.claims import (
    accuracy_unchanged,
    born_dead,
    cheaper,
    forty_percent,
    gradient_changes,
    irreversible,
    remedies,
    sparse,
    vanishing,
)
from relulab.report.evidence import Evidence
from relulab.report.outcome import Outcome, Verdict
from relulab.report.statistics import ALPHA, holm

# The findings section with each claim's details (anchors of the rendered findings).
ANCHORS = {
    gradient_changes.KEY: "q1",
    accuracy_unchanged.KEY: "q1",
    forty_percent.KEY: "q2",
    irreversible.KEY: "q2",
    remedies.KEY: "q2",
    born_dead.KEY: "q2",
    vanishing.RELATIVE_KEY: "q3",
    vanishing.ABSOLUTE_KEY: "q3",
    cheaper.KEY: "q3",
    sparse.KEY: "q3",
}


def judge_each(evidence: Evidence) -> list[Outcome]:
    """Every claim's outcome, before the multiplicity adjustment."""
    return [
        gradient_changes.judge(evidence.bifurcation),
        accuracy_unchanged.judge(evidence.twins),
        forty_percent.judge(evidence.training),
        irreversible.judge(evidence.revival),
        remedies.judge(evidence.training),
        born_dead.judge(evidence.born_dead),
        vanishing.relative(evidence.gradient),
        vanishing.absolute(evidence.gradient),
        cheaper.judge(evidence.cost),
        sparse.judge(evidence.sparsity, evidence.training),
    ]


def adjust(outcomes: list[Outcome], alpha: float = ALPHA) -> list[Outcome]:
    """The outcomes after Holm's adjustment of their p-values across the table."""
    adjusted = holm([o.p_value for o in outcomes])
    return [
        o if p is None or o.p_value is None else o.adjusted(p, alpha)
        for o, p in zip(outcomes, adjusted, strict=True)
    ]


def judge_all(evidence: Evidence) -> list[Outcome]:
    from dataclasses import replace

    return [replace(o, anchor=ANCHORS.get(o.key, "")) for o in adjust(judge_each(evidence))]


__all__ = ["ANCHORS", "Verdict", "adjust", "judge_all", "judge_each"]
