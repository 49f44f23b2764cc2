"""Claim: a dead ReLU never comes back.

Measured on ReLU only (the activation whose units can be dead), pooled over units of every
counted run (bitwise f'(0) twins once), per optimizer, cause of death (born dead, died in
training) and layer group, with a Wilson interval of the revived share.

Two definitions, reported side by side. At epoch-end snapshots a unit is dead when its local
derivative is exactly 0 on every training example with the weights frozen, and revived when it
is not dead at a later snapshot; a unit dead at one snapshot may have been alive during the
steps around it, so snapshot revival can count units that were never dead for a whole epoch.
By the step-level definition a unit is dead over an epoch when its local derivative was 0 on
every example of every training step of that epoch (it passed no gradient to its weights then),
and revived when it had a non-zero one in a later epoch's steps. The verdict rests on the
step-level counts where the runs recorded them, else on the snapshot counts (said so).

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
SNAPSHOT = (
    "at epoch-end snapshots, a unit dead at one (derivative 0 on every training example, "
    "weights frozen) and alive at a later one"
)
STEPS = (
    "over training steps, a unit dead over a whole epoch (derivative 0 on every example of "
    "every step) and alive in a later epoch's steps"
)
DEFINITION = f"revived {STEPS}, beside revived {SNAPSHOT}"
SNAPSHOT_ONLY = f"revived {SNAPSHOT}; the step-level definition was not recorded by these runs"


def _group(c: RevivalCount) -> str:
    return f"{labels.axis_text('optimizer', c.optimizer)}, {c.cause}, {c.layer_group}"


def _both(c: RevivalCount) -> str:
    snapshot = f"{c.revived}/{c.died} at snapshots, {interval_text(c.share)}"
    if not c.step_died:
        return f"{_group(c)}: no unit dead over a whole epoch's steps; {snapshot}"
    return (
        f"{_group(c)}: {c.step_revived}/{c.step_died} units revived over steps, "
        f"{interval_text(c.step_share)}; {snapshot}"
    )


def _snapshot(c: RevivalCount) -> str:
    return f"{_group(c)}: {c.revived}/{c.died} units revived, {interval_text(c.share)}"


def _verdict(revived_in: int, groups: int) -> Verdict:
    if revived_in == 0:
        return Verdict.SUPPORTED
    return Verdict.REFUTED if revived_in == groups else Verdict.MIXED


def _total(died: int, revived: int) -> str:
    return f"{revived}/{died} ({text.pct(revived / died) if died else 'n/a'})"


def judge(counts: tuple[RevivalCount, ...] | NotMeasured) -> Outcome:
    if isinstance(counts, NotMeasured):
        return not_testable(CLAIM, KEY, counts)
    if not any(c.died or c.step_died for c in counts):
        return not_testable(CLAIM, KEY, "no ReLU unit died")
    if any(c.step_died is None for c in counts):
        return _judged_at_snapshots(counts)
    snapshot = _total(sum(c.died for c in counts), sum(c.revived for c in counts))
    with_deaths = [c for c in counts if c.step_died]
    setting = f"ReLU units, pooled over every counted run per optimizer; {DEFINITION}"
    if not with_deaths:
        return Outcome(
            CLAIM,
            Verdict.NOT_TESTABLE,
            setting,
            f"no unit dead over a whole epoch's steps; {snapshot} units revived at snapshots",
            "no ReLU unit was dead over a whole epoch's training steps, so none could come "
            f"back; the units dead at epoch-end snapshots ({snapshot} revived) were alive "
            "during training steps",
            KEY,
        )
    parts = [_both(c) for c in counts if c.step_died or c.died]
    revived = [c for c in with_deaths if c.step_revived]
    steps = _total(sum(c.step_died for c in counts), sum(c.step_revived for c in counts))
    return Outcome(
        CLAIM,
        _verdict(len(revived), len(with_deaths)),
        setting,
        f"{steps} units revived overall over steps, {snapshot} at snapshots; " + "; ".join(parts),
        f"revival over steps in {len(revived)} of {len(with_deaths)} (optimizer, cause, layer "
        "group) groups with units dead over a whole epoch (the snapshot counts are beside them)",
        KEY,
        headline=f"{steps} ReLU units revived after a whole epoch dead; {snapshot} at "
        "epoch-end snapshots",
        details=tuple(parts),
    )


def _judged_at_snapshots(counts: tuple[RevivalCount, ...]) -> Outcome:
    """The verdict on the snapshot counts, where the step-level ones were not recorded."""
    with_deaths = [c for c in counts if c.died]
    if not with_deaths:
        return not_testable(CLAIM, KEY, "no ReLU unit died")
    parts = [_snapshot(c) for c in with_deaths]
    revived = [c for c in with_deaths if c.revived]
    total = _total(sum(c.died for c in with_deaths), sum(c.revived for c in with_deaths))
    return Outcome(
        CLAIM,
        _verdict(len(revived), len(with_deaths)),
        f"ReLU units, pooled over every counted run per optimizer; {SNAPSHOT_ONLY}",
        f"{total} units revived overall; " + "; ".join(parts),
        f"revival in {len(revived)} of {len(with_deaths)} (optimizer, cause, layer group) "
        "groups with deaths",
        KEY,
        headline=f"{total} ReLU units revived at epoch-end snapshots",
        details=tuple(parts),
    )
