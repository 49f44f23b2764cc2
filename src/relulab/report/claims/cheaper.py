"""Claim: ReLU is cheaper to compute than the smooth activations.

Rests on whole training steps (forward, backward and optimizer at the study's sizes) where
they were timed, else on the activation kernel alone (said so). Each activation's ratio to
ReLU carries the benchmark's own verdict against its null (a second timing of ReLU):
"dearer", "cheaper" or "same". Rule: every smooth activation dearer -> supported; none dearer
-> refuted; otherwise mixed. The outcome names the machine: timings hold on it only.
"""

from __future__ import annotations

from relulab.report import text
from relulab.report.evidence.questions import CostEvidence
from relulab.report.outcome import NotMeasured, Outcome, Verdict, not_testable

KEY = "cheaper"
CLAIM = "ReLU is cheaper to compute than the smooth activations"


def judge(cost: CostEvidence | NotMeasured) -> Outcome:
    if isinstance(cost, NotMeasured):
        return not_testable(CLAIM, KEY, cost)
    if not cost.ratios:
        return not_testable(CLAIM, KEY, "no smooth activation was timed")
    dearer = [r.activation for r in cost.ratios if r.verdict == "dearer"]
    parts = [
        f"{r.activation} {text.ratio(r.ratio.mean)} [{text.num(r.ratio.low, 3)}, "
        f"{text.num(r.ratio.high, 3)}] ({r.verdict})"
        for r in cost.ratios
    ]
    if len(dearer) == len(cost.ratios):
        verdict = Verdict.SUPPORTED
    elif not dearer:
        verdict = Verdict.REFUTED
    else:
        verdict = Verdict.MIXED
    machines = sorted({r.machine for r in cost.ratios})
    return Outcome(
        CLAIM,
        verdict,
        f"{cost.setting}; machine: {'; '.join(machines)}",
        "time relative to ReLU [95 %]: " + "; ".join(parts),
        f"{len(dearer)} of {len(cost.ratios)} smooth activations dearer than ReLU beyond the null",
        KEY,
        headline="; ".join(parts),
    )
