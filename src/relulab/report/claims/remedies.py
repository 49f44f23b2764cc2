"""Claim: Leaky ReLU, PReLU, RReLU and ELU fix dying ReLU.

Judged at every grid point where ReLU (f'(0)=0) learns and loses units (lower 95 % bound of
its dead fraction > 0), each remedy at the same setting. A remedy **fixes** it there if it
learns, has no dead unit, did not diverge in more runs than ReLU, and its accuracy interval is
not wholly below ReLU's; it **fails** if it diverged in more runs than ReLU, does not learn, has
dead units (lower bound > 0) or its accuracy interval lies wholly below ReLU's; otherwise it is
undecided. Supported if every pair fixes, refuted if every pair fails, mixed otherwise.

These remedies cannot have a dead unit by definition (their derivative is never exactly 0 but
by exp underflow), so "0 % dead" is no finding on its own: the outcome also reports the
fraction of their units never active (pre-activation <= 0 on every example).
"""

from __future__ import annotations

from relulab.report import labels, text
from relulab.report.claims.common import combine, interval_text
from relulab.report.evidence.runs import PointRuns, TrainingEvidence
from relulab.report.outcome import Outcome, Verdict, not_testable

KEY = "remedies"
CLAIM = "Leaky ReLU, PReLU, RReLU and ELU fix dying ReLU"
REMEDIES = ("leaky_relu", "prelu", "rrelu", "elu")


def compare(relu: PointRuns, remedy: PointRuns) -> tuple[Verdict, str]:
    """One remedy against ReLU at one setting: SUPPORTED (fixes), REFUTED (fails) or not."""
    accuracy, ours = remedy.accuracy_interval, relu.accuracy_interval
    why = []
    if remedy.diverged > relu.diverged:
        why.append(f"diverged {remedy.diverged}/{remedy.seeds} against ReLU's {relu.diverged}")
    if not remedy.learns:
        why.append("does not learn")
    elif accuracy.below(ours):
        why.append("lower accuracy")
    dead = remedy.dead_interval
    if dead.known and dead.low > 0:
        why.append("units dead")
    numbers = (
        f"{labels.variant(remedy.axis('activation'), remedy.axis('zero_grad'))}: "
        f"{remedy.diverged}/{remedy.seeds} diverged, accuracy {interval_text(accuracy)}, dead "
        f"{text.pct(dead.mean)}, never active {text.pct(remedy.inactive_interval.mean)}"
    )
    if why:
        return Verdict.REFUTED, f"{numbers} (fails: {', '.join(why)})"
    if remedy.learns and dead.mean == 0:
        return Verdict.SUPPORTED, f"{numbers} (fixes)"
    return Verdict.NOT_TESTABLE, f"{numbers} (undecided)"


def judge(training: TrainingEvidence) -> Outcome:
    relu = training.where(activation="relu", zero_grad=0.0)
    losing = [p for p in relu if p.learns and p.dead_interval.known and p.dead_interval.low > 0]
    if not losing:
        return not_testable(CLAIM, KEY, "ReLU lost no units at a grid point where it learns")
    verdicts, parts, settings = [], [], []
    for point in losing:
        remedies = training.same_setting(point, activation=list(REMEDIES))
        remedies = [r for r in remedies if r.axis("zero_grad") in (None, 0.0)]
        if not remedies:
            continue
        where = labels.label(point.row, [a for a, _ in point.axes if a not in labels.VARIANT_AXES])
        settings.append(where)
        pairs = [compare(point, r) for r in remedies]
        verdicts += [v for v, _ in pairs]
        parts.append(
            f"{where}: ReLU {interval_text(point.dead_interval)} dead, {point.diverged}/"
            f"{point.seeds} diverged, accuracy {interval_text(point.accuracy_interval)}; "
            + "; ".join(t for _, t in pairs)
        )
    if not verdicts:
        return not_testable(CLAIM, KEY, "no remedy was trained where ReLU lost units")
    verdict = combine(verdicts)
    if Verdict.NOT_TESTABLE in verdicts and verdict in (Verdict.SUPPORTED, Verdict.REFUTED):
        verdict = Verdict.MIXED
    fixes = sum(v is Verdict.SUPPORTED for v in verdicts)
    fails = sum(v is Verdict.REFUTED for v in verdicts)
    return Outcome(
        CLAIM,
        verdict,
        f"every setting where ReLU learns and loses units ({len(settings)}): "
        + " | ".join(settings),
        " | ".join(parts),
        f"{fixes} of {len(verdicts)} remedy-setting pairs fix it, {fails} fail (their units "
        "cannot be dead by definition: accuracy, divergence and never-active units decide)",
        KEY,
        headline=f"{fixes} of {len(verdicts)} remedy-setting pairs fix it, {fails} fail",
        details=tuple(parts),
    )
