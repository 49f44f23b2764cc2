"""Claim: ReLU'(0) is arbitrary: it never changes a gradient.

Rule (an existence claim, exact, no test): refuted if any initialisation of any bifurcation
cell had a mini-batch gradient differ bitwise between f'(0)=0 and f'(0)=1; supported, at the
measured exposure and on the machine measured, if none did. The bitwise result depends on the
machine's kernel path, so the outcome names it.
"""

from __future__ import annotations

from relulab.report import text
from relulab.report.evidence.questions import BifurcationCell
from relulab.report.outcome import NotMeasured, Outcome, Verdict, not_testable

KEY = "fprime_gradient"
CLAIM = "ReLU'(0) is arbitrary: it never changes a gradient"


def judge(cells: tuple[BifurcationCell, ...] | NotMeasured) -> Outcome:
    if isinstance(cells, NotMeasured):
        return not_testable(CLAIM, KEY, cells)
    if not cells:
        return not_testable(CLAIM, KEY, "no bifurcation cell with the default GEMM path")
    parts = []
    precisions = list(dict.fromkeys(c.precision for c in cells))
    for precision in precisions:
        mine = [c for c in cells if c.precision == precision]
        top = max(mine, key=lambda c: (c.differ / c.inits, c.pre_activations))
        parts.append(
            f"{precision}: {top.differ}/{top.inits} {text.pct_interval(top.low, top.high, 0)} "
            f"at {top.depth}x{top.width}"
        )
    differ = sum(c.differ for c in cells)
    machines = sorted({c.machine for c in cells})
    setting = (
        f"untrained ReLU MLPs, {len(cells)} cells up to {max(c.depth for c in cells)}x"
        f"{max(c.width for c in cells)}, one pass, f'(0)=0 vs 1; machine: {'; '.join(machines)}"
    )
    measured = "initialisations with a bitwise different gradient (most per precision): " + (
        "; ".join(parts)
    )
    if differ:
        return Outcome(
            CLAIM,
            Verdict.REFUTED,
            setting,
            measured,
            f"{differ} initialisations had a gradient change (one suffices)",
            KEY,
            headline="; ".join(parts),
        )
    return Outcome(
        CLAIM,
        Verdict.SUPPORTED,
        setting,
        measured,
        "no gradient changed at this exposure on this machine",
        KEY,
        headline="; ".join(parts),
    )
