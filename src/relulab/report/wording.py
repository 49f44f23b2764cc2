"""The claims in words: the summary that opens the findings (one line per question, its answer
and key number with its setting), the claims table's short cells, and each claim in detail."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from relulab.report.outcome import Outcome, Verdict
from relulab.report.statistics import ALPHA

# Each claim as the question a reader asks, and the answer each verdict gives to it.
QUESTIONS: dict[str, tuple[str, dict[Verdict, str]]] = {
    "fprime_gradient": (
        "Q1. Does ReLU'(0) ever change a gradient?",
        {Verdict.REFUTED: "Yes, in floating point", Verdict.SUPPORTED: "Not at this exposure"},
    ),
    "fprime_accuracy": (
        "Q1. Does ReLU'(0) change the accuracy training reaches?",
        {
            Verdict.SUPPORTED: "No (no more than a 1-ulp change of one weight)",
            Verdict.REFUTED: "Yes, beyond a 1-ulp change of one weight",
        },
    ),
    "forty_percent": (
        "Q2. Can 40 % of a network die at a high learning rate?",
        {Verdict.SUPPORTED: "Yes", Verdict.REFUTED: "No, less"},
    ),
    "irreversible": (
        "Q2. Do dead ReLU units stay dead?",
        {
            Verdict.SUPPORTED: "Yes",
            Verdict.REFUTED: "No, some come back",
            Verdict.MIXED: "In some layers and causes; others come back",
        },
    ),
    "remedies": (
        "Q2. Do Leaky ReLU, PReLU, RReLU and ELU fix dying ReLU?",
        {Verdict.SUPPORTED: "Yes", Verdict.REFUTED: "No", Verdict.MIXED: "At some settings"},
    ),
    "born_dead": (
        "Q2. Are deep narrow ReLU networks born dead?",
        {Verdict.SUPPORTED: "Yes, more with depth", Verdict.REFUTED: "No"},
    ),
    "vanishing_relative": (
        "Q3. Does ReLU's gradient vanish less with depth than sigmoid's and tanh's?",
        {Verdict.SUPPORTED: "Yes", Verdict.REFUTED: "No", Verdict.MIXED: "Against some"},
    ),
    "vanishing_absolute": (
        "Q3. Does ReLU's gradient not vanish with depth at all?",
        {
            Verdict.SUPPORTED: "It does not vanish",
            Verdict.REFUTED: "It vanishes",
            Verdict.MIXED: "Depends on the init",
        },
    ),
    "cheaper": (
        "Q3. Is ReLU cheaper to compute?",
        {Verdict.SUPPORTED: "Yes", Verdict.REFUTED: "No", Verdict.MIXED: "Than some"},
    ),
    "sparse": (
        "Q3. Does ReLU make activations sparse?",
        {Verdict.SUPPORTED: "Yes", Verdict.REFUTED: "No", Verdict.MIXED: "At some settings"},
    ),
}


@dataclass(frozen=True)
class SummaryLine:
    question: str
    answer: str
    key_number: str
    anchor: str


def answer(outcome: Outcome) -> str:
    question = QUESTIONS.get(outcome.key)
    if outcome.verdict is Verdict.NOT_TESTABLE:
        return "Not testable here"
    if question is None:
        return str(outcome.verdict).capitalize()
    return question[1].get(outcome.verdict, str(outcome.verdict).capitalize())


def summary(outcomes: list[Outcome]) -> list[SummaryLine]:
    """One line per question, in the claims' order."""
    lines = []
    for o in outcomes:
        question = QUESTIONS.get(o.key, (o.claim, {}))[0]
        number = o.headline if o.verdict is not Verdict.NOT_TESTABLE else o.reason
        lines.append(SummaryLine(question, answer(o), _short(number), f"claim-{o.key}"))
    return lines


def claims_table(outcomes: list[Outcome]) -> pd.DataFrame:
    """Short cells: the claim, its verdict, the key number and where the details are."""
    return pd.DataFrame(
        [
            {
                "claim": o.claim,
                "verdict": str(o.verdict),
                "key number": _short(o.headline or o.reason),
                "p (Holm)": "" if o.p_adjusted is None else f"{o.p_adjusted:.2g}",
                "details": f"claim-{o.key}",
            }
            for o in outcomes
        ]
    )


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


def counts_sentence(outcomes: list[Outcome]) -> str:
    counts = {v: sum(o.verdict is v for o in outcomes) for v in Verdict}
    tested = sum(o.p_value is not None for o in outcomes)
    return (
        f"{counts[Verdict.SUPPORTED]} supported, {counts[Verdict.REFUTED]} refuted, "
        f"{counts[Verdict.MIXED]} mixed, {counts[Verdict.NOT_TESTABLE]} not testable here. "
        f"Verdicts that rest on a statistical test ({tested} here) are adjusted for "
        f"multiplicity across this table by Holm's method (family-wise {ALPHA:.0%}); those "
        "resting on an exact observation or on the separation of intervals are not. Each rule "
        "is in docs/claims.md."
    )


def detail(outcome: Outcome) -> list[tuple[str, str]]:
    """A claim in detail: (label, text) pairs."""
    rows = [
        ("Verdict", str(outcome.verdict)),
        ("Setting", outcome.setting),
        ("Measured", outcome.measured if not outcome.details else ""),
        ("Rule applied", outcome.reason),
    ]
    if outcome.p_value is not None:
        adjusted = "" if outcome.p_adjusted is None else f", Holm-adjusted {outcome.p_adjusted:.2g}"
        rows.append(("Test", f"p = {outcome.p_value:.2g}{adjusted}"))
    return [(k, v) for k, v in rows if v]
