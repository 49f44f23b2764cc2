"""What a claim's judge returns: a verdict, where it was judged, what was measured, and why.

A missing measurement is a value (``NotMeasured(reason)``), so a judge never guesses from a
caught exception: a renamed column fails loudly where the table is read, not silently here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace


class Verdict(enum.Enum):
    SUPPORTED = "supported"
    REFUTED = "refuted"
    MIXED = "mixed"
    NOT_TESTABLE = "not testable"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class NotMeasured:
    """A measurement the study does not have, and why (a switched-off experiment, every run
    diverged, a table without the column)."""

    reason: str

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class Outcome:
    """One claim judged. ``setting``: where (in words); ``measured``: the numbers the verdict
    rests on (in words); ``reason``: the rule that gave the verdict, applied to them.
    ``p_value``: of the test the verdict rests on, where it rests on one (the claims table
    adjusts these for multiplicity); ``anchor``: the findings section with the details."""

    claim: str
    verdict: Verdict
    setting: str
    measured: str
    reason: str
    key: str = ""
    headline: str = ""
    p_value: float | None = None
    p_adjusted: float | None = None
    anchor: str = ""
    details: tuple[str, ...] = field(default_factory=tuple)

    def adjusted(self, p_adjusted: float, alpha: float) -> Outcome:
        """This outcome after the multiplicity adjustment: a verdict that rests on a test no
        longer significant at ``alpha`` becomes not testable."""
        if self.verdict is Verdict.NOT_TESTABLE or p_adjusted <= alpha:
            return replace(self, p_adjusted=p_adjusted)
        return replace(
            self,
            p_adjusted=p_adjusted,
            verdict=Verdict.NOT_TESTABLE,
            reason=f"{self.reason}; but its test is not significant after Holm's adjustment "
            f"across the claims (p = {p_adjusted:.2g} > {alpha:g}), so not testable here",
        )


def not_testable(claim: str, key: str, missing: NotMeasured | str, setting: str = "") -> Outcome:
    reason = missing.reason if isinstance(missing, NotMeasured) else missing
    return Outcome(
        claim=claim,
        verdict=Verdict.NOT_TESTABLE,
        setting=setting or "n/a",
        measured="not measured",
        reason=reason,
        key=key,
    )
