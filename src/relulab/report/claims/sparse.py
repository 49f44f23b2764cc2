"""Claim: ReLU gives sparse activations.

At every grid point where ReLU (f'(0)=0) learns, its sparsity (outputs exactly 0 on the
training set at the last epoch; 95 % interval clipped to [0, 1]) against the sparsest smooth
activation at the same setting. ReLU's interval wholly above: supported there; wholly below:
refuted; overlapping: not testable. Combined: all testable agree -> that, else mixed.
"""

from __future__ import annotations

from relulab.nn import activations
from relulab.report import labels
from relulab.report.claims.common import combine, interval_text, point_labels
from relulab.report.evidence.questions import Sparsity
from relulab.report.evidence.runs import TrainingEvidence
from relulab.report.outcome import NotMeasured, Outcome, Verdict, not_testable

KEY = "sparse"
CLAIM = "ReLU gives sparse activations"


def _setting(row) -> tuple:
    return tuple((a, v) for a, v in row if a not in labels.VARIANT_AXES)


def judge(sparsity: tuple[Sparsity, ...] | NotMeasured, training: TrainingEvidence) -> Outcome:
    if isinstance(sparsity, NotMeasured):
        return not_testable(CLAIM, KEY, sparsity)
    learning = {p.point for p in training.where(activation="relu", zero_grad=0.0) if p.learns}
    by_setting = {}
    for s in sparsity:
        by_setting.setdefault(_setting(s.row), []).append(s)
    relu_rows = [
        s
        for s in sparsity
        if s.axis("activation") == "relu" and s.axis("zero_grad") == 0.0 and s.point in learning
    ]
    if not relu_rows:
        return not_testable(CLAIM, KEY, "ReLU learned at no grid point with a sparsity measured")
    names = point_labels([dict(s.row) for s in relu_rows])
    verdicts, parts = [], []
    for name, relu in zip(names, relu_rows, strict=True):
        smooth = [
            s for s in by_setting[_setting(relu.row)] if s.axis("activation") in activations.SMOOTH
        ]
        if not smooth:
            continue
        densest = max(smooth, key=lambda s: s.sparsity.mean)
        if relu.sparsity.above(densest.sparsity):
            verdict = Verdict.SUPPORTED
        elif relu.sparsity.below(densest.sparsity):
            verdict = Verdict.REFUTED
        else:
            verdict = Verdict.NOT_TESTABLE
        verdicts.append(verdict)
        parts.append(
            f"{name}: {interval_text(relu.sparsity)} vs {densest.axis('activation')} "
            f"{interval_text(densest.sparsity)}"
        )
    if not verdicts:
        return not_testable(CLAIM, KEY, "no smooth activation at ReLU's settings")
    return Outcome(
        CLAIM,
        combine(verdicts),
        "ReLU (f'(0)=0) where it learns, against the sparsest smooth activation at its setting",
        "outputs exactly 0: " + "; ".join(parts),
        f"ReLU sparser (intervals separate) at {verdicts.count(Verdict.SUPPORTED)} of "
        f"{len(verdicts)} settings",
        KEY,
        headline="; ".join(parts[:2]) + ("; ..." if len(parts) > 2 else ""),
        details=tuple(parts),
    )
