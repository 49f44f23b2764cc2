"""What the judges share: combining per-setting verdicts, and labelling the settings cited."""

from __future__ import annotations

import math

from relulab.report import labels, text
from relulab.report.evidence.runs import Interval
from relulab.report.outcome import Verdict


def at_least(value: float, threshold: float) -> bool:
    """``value >= threshold``, a value equal to it up to rounding (1e-9 relative) included: a
    rule's threshold is reached at the threshold."""
    return value >= threshold or math.isclose(value, threshold, rel_tol=1e-9)


def combine(verdicts) -> Verdict:
    """One verdict from per-setting ones: the testable ones agree -> theirs; they disagree ->
    mixed; none testable -> not testable."""
    testable = {v for v in verdicts if v is not Verdict.NOT_TESTABLE}
    if not testable:
        return Verdict.NOT_TESTABLE
    if testable == {Verdict.SUPPORTED}:
        return Verdict.SUPPORTED
    if testable == {Verdict.REFUTED}:
        return Verdict.REFUTED
    return Verdict.MIXED


def interval_text(interval: Interval) -> str:
    return f"{text.pct(interval.mean)} {text.pct_interval(interval.low, interval.high)}"


def point_labels(rows: list[dict]) -> list[str]:
    """A label per row naming every axis that varies among ``rows`` (the variant always)."""
    import pandas as pd

    return labels.item_labels(pd.DataFrame(rows))


def shared_setting(rows: list[dict]) -> str:
    """The settings all ``rows`` share, in words."""
    import pandas as pd

    return labels.context(pd.DataFrame(rows))
