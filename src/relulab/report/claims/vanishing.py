"""Claims: ReLU's gradient vanishes less with depth than sigmoid's and tanh's (relative), and
does not vanish at all (absolute). Two claims, judged per init (and every other axis that
varies), at the deepest depth of the depth study and its smallest learning rate.

Measure: the backward signal at the first hidden layer over the last one's (geometric mean
over seeds, 95 % interval); per layer, that ratio to the power 1/(depth - 1).

- Relative: ReLU against each of sigmoid and tanh. ReLU's interval wholly above the other's:
  supported for that pair; wholly below: refuted; overlapping: not testable.
- Absolute: ReLU's per-layer factor. Lower bound >= 0.9: supported (it loses less than 10 % per
  layer); upper bound < 0.9: refuted (exponential vanishing, e.g. 0.41 per layer is 3e-4 over
  ten layers); otherwise not testable.

Per-setting verdicts combine: all testable agree -> that verdict, else mixed.
"""

from __future__ import annotations

from relulab.report import labels, text
from relulab.report.claims.common import at_least, combine
from relulab.report.evidence.questions import GradientRatio
from relulab.report.outcome import NotMeasured, Outcome, Verdict, not_testable

RELATIVE_KEY = "vanishing_relative"
RELATIVE = "ReLU's gradient vanishes less with depth than sigmoid's and tanh's"
ABSOLUTE_KEY = "vanishing_absolute"
ABSOLUTE = "ReLU's gradient does not vanish with depth"
PER_LAYER_FLOOR = 0.9
SATURATING = ("sigmoid", "tanh")


def _is_reference(r: GradientRatio) -> bool:
    """ReLU at f'(0)=0 (its other f'(0) are Q1's question), every other activation as it is."""
    return r.axis("activation") != "relu" or r.axis("zero_grad") == 0.0


def _settings(ratios: tuple[GradientRatio, ...]) -> dict[tuple, dict[str, GradientRatio]]:
    """Per setting (every axis but the variant, depth and lr): each activation's ratio at the
    setting's deepest depth and its smallest lr there."""
    groups: dict[tuple, list[GradientRatio]] = {}
    for r in filter(_is_reference, ratios):
        key = tuple((a, v) for a, v in r.row if a not in ("activation", "zero_grad", "depth", "lr"))
        groups.setdefault(key, []).append(r)
    chosen = {}
    for key, members in groups.items():
        deepest = max(m.depth for m in members)
        lr = min(m.axis("lr") for m in members if m.depth == deepest)
        chosen[key] = {
            m.axis("activation"): m for m in members if m.depth == deepest and m.axis("lr") == lr
        }
    return chosen


def _where(key: tuple, varying: set[str], ratio: GradientRatio) -> str:
    shown = [a for a, _ in key if a in varying]
    head = labels.label(dict(key), shown)
    tail = f"{text.hidden(ratio.depth)}, lr {ratio.axis('lr'):g}"
    return f"{head}, {tail}" if head else tail


def _varying(chosen) -> set[str]:
    keys = list(chosen)
    axes = {a for key in keys for a, _ in key}
    return {a for a in axes if len({dict(k).get(a) for k in keys}) > 1}


def relative(ratios: tuple[GradientRatio, ...] | NotMeasured) -> Outcome:
    if isinstance(ratios, NotMeasured):
        return not_testable(RELATIVE, RELATIVE_KEY, ratios)
    chosen = _settings(ratios)
    varying = _varying(chosen)
    verdicts, parts = [], []
    for key, by in chosen.items():
        if "relu" not in by:
            continue
        relu = by["relu"]
        for name in SATURATING:
            if name not in by:
                continue
            other = by[name]
            if relu.ratio.above(other.ratio):
                verdict = Verdict.SUPPORTED
            elif relu.ratio.below(other.ratio):
                verdict = Verdict.REFUTED
            else:
                verdict = Verdict.NOT_TESTABLE
            verdicts.append(verdict)
            parts.append(
                f"{_where(key, varying, relu)}: relu "
                f"{text.gm(relu.ratio.mean, relu.ratio.low, relu.ratio.high)} vs {name} "
                f"{text.gm(other.ratio.mean, other.ratio.low, other.ratio.high)} ({verdict})"
            )
    if not verdicts:
        return not_testable(
            RELATIVE, RELATIVE_KEY, "ReLU and sigmoid/tanh not both in the depth study"
        )
    measured_by = next(iter(ratios)).measure
    return Outcome(
        RELATIVE,
        combine(verdicts),
        "deepest depth of the depth study, smallest lr, per setting",
        f"first/last-layer ratio of the {measured_by}: " + "; ".join(parts),
        "ReLU's interval wholly above the other's: supported; wholly below: refuted; "
        "overlapping: not testable (per pair, then combined)",
        RELATIVE_KEY,
        headline="; ".join(parts),
        details=tuple(parts),
    )


def absolute(ratios: tuple[GradientRatio, ...] | NotMeasured) -> Outcome:
    if isinstance(ratios, NotMeasured):
        return not_testable(ABSOLUTE, ABSOLUTE_KEY, ratios)
    chosen = _settings(ratios)
    varying = _varying(chosen)
    verdicts, parts = [], []
    for key, by in chosen.items():
        if "relu" not in by:
            continue
        relu = by["relu"]
        factor = relu.per_layer
        if factor.known and at_least(factor.low, PER_LAYER_FLOOR):
            verdict = Verdict.SUPPORTED
        elif factor.known and not at_least(factor.high, PER_LAYER_FLOOR):
            verdict = Verdict.REFUTED
        else:
            verdict = Verdict.NOT_TESTABLE
        verdicts.append(verdict)
        parts.append(
            f"{_where(key, varying, relu)}: ×{text.gm(factor.mean, factor.low, factor.high)} per "
            f"layer, {text.num(relu.ratio.mean, 2)} over {relu.depth - 1} layers ({verdict})"
        )
    if not verdicts:
        return not_testable(ABSOLUTE, ABSOLUTE_KEY, "ReLU is not in the depth study")
    return Outcome(
        ABSOLUTE,
        combine(verdicts),
        "ReLU at the deepest depth of the depth study, smallest lr, per setting",
        "per-layer factor of the backward signal: " + "; ".join(parts),
        f"per-layer factor's lower bound >= {PER_LAYER_FLOOR}: supported; upper bound < "
        f"{PER_LAYER_FLOOR}: refuted (vanishes exponentially); else not testable",
        ABSOLUTE_KEY,
        headline="; ".join(parts),
        details=tuple(parts),
    )
