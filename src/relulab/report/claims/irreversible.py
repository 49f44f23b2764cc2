"""Claim: a dead ReLU never comes back.

Measured on ReLU only (the activation whose units can be dead), pooled over units of every
counted run (bitwise f'(0) twins once), per optimizer, cause of death (born dead, died in
training) and layer group, with a Wilson interval of the revived share.

Definition: a unit is dead at an epoch-end snapshot (local derivative exactly 0 on every
training example, weights frozen) and revived when it is not dead at a later snapshot. A unit
dead at one snapshot may have been alive during the steps between snapshots, so revival at
snapshots can count units that were never dead for a whole epoch; the step-level definition
was not measured.

Rule (existence, no test): over the groups with deaths, revived units in none -> supported;
in every group -> refuted; in some -> mixed; no unit died -> not testable.
"""

from __future__ import annotations

from relulab.report import labels, text
from relulab.report.claims.common import interval_text
from relulab.report.evidence.questions import RevivalCount
from relulab.report.outcome import NotMeasured, Outcome, Verdict, not_testable

KEY = "irreversible"
CLAIM = "A dead ReLU never comes back (dying is irreversible)"
DEFINITION = (
    "dead and revived at epoch-end snapshots (a unit dead at one and alive at a later one); "
    "not a step-level definition"
)


def judge(counts: tuple[RevivalCount, ...] | NotMeasured) -> Outcome:
    if isinstance(counts, NotMeasured):
        return not_testable(CLAIM, KEY, counts)
    with_deaths = [c for c in counts if c.died]
    if not with_deaths:
        return not_testable(CLAIM, KEY, "no ReLU unit died")
    parts = [
        f"{labels.axis_text('optimizer', c.optimizer)}, {c.cause}, {c.layer_group}: "
        f"{c.revived}/{c.died} units revived, {interval_text(c.share)}"
        for c in with_deaths
    ]
    revived = [c for c in with_deaths if c.revived]
    if not revived:
        verdict = Verdict.SUPPORTED
    elif len(revived) == len(with_deaths):
        verdict = Verdict.REFUTED
    else:
        verdict = Verdict.MIXED
    total_died = sum(c.died for c in with_deaths)
    total_revived = sum(c.revived for c in with_deaths)
    return Outcome(
        CLAIM,
        verdict,
        f"ReLU units, pooled over every counted run per optimizer; {DEFINITION}",
        f"{total_revived}/{total_died} units revived overall "
        f"({text.pct(total_revived / total_died)}); " + "; ".join(parts),
        f"revival in {len(revived)} of {len(with_deaths)} (optimizer, cause, layer group) "
        "groups with deaths",
        KEY,
        headline=f"{total_revived}/{total_died} ReLU units revived "
        f"({text.pct(total_revived / total_died)})",
        details=tuple(parts),
    )
