"""Each claim's verdict rule on constructed evidence, at, above and below its thresholds
(docs/claims.md), and the multiplicity adjustment across the claims table."""

import math

import pytest

from relulab.report import claims
from relulab.report.claims import (
    accuracy_unchanged,
    born_dead,
    cheaper,
    forty_percent,
    gradient_changes,
    irreversible,
    remedies,
    sparse,
    vanishing,
)
from relulab.report.evidence import questions
from relulab.report.evidence.runs import (
    DIVERGED_LOSS,
    MIN_FINISHED_SEEDS,
    Interval,
    PointRuns,
    TrainingEvidence,
    diverged,
)
from relulab.report.outcome import NotMeasured, Outcome, Verdict
from relulab.report.statistics import holm

S, R, M, N = Verdict.SUPPORTED, Verdict.REFUTED, Verdict.MIXED, Verdict.NOT_TESTABLE


def runs(
    activation="relu",
    lr=0.03,
    optimizer="adam",
    dead=(0.0,) * 4,
    accuracy=(0.5,) * 4,
    diverged_runs=0,
    inactive=None,
    zero_grad=0.0,
    depth=3,
):
    axes = {
        "activation": activation,
        "zero_grad": zero_grad if activation in ("relu", "leaky_relu", "prelu", "rrelu") else None,
        "lr": lr,
        "precision": "float32",
        "depth": depth,
        "batch_norm": False,
        "optimizer": optimizer,
        "init": "default",
    }
    return PointRuns(
        point=f"{activation}_{lr}_{optimizer}_{depth}",
        axes=tuple(axes.items()),
        seeds=len(accuracy) + diverged_runs,
        diverged=diverged_runs,
        accuracy=tuple(accuracy),
        dead=tuple(dead),
        inactive=tuple(inactive if inactive is not None else dead),
        final_loss=(1.0,) * len(accuracy),
    )


# -- divergence and learning ------------------------------------------------------------------
def test_divergence_is_nan_or_a_loss_above_twice_the_untrained_one():
    assert pytest.approx(2 * math.log(10)) == DIVERGED_LOSS
    assert not diverged(DIVERGED_LOSS)
    assert diverged(DIVERGED_LOSS * 1.0001)
    assert diverged(1.5e17) and diverged(math.nan) and diverged(math.inf)
    assert diverged(1.0, "diverged") and not diverged(1.0)


@pytest.mark.parametrize(
    ("accuracy", "diverged_runs", "learns"),
    [
        ((0.5, 0.52, 0.51), 0, True),
        ((0.1, 0.1, 0.1), 0, False),  # at chance: the interval is not above it
        ((0.1001, 0.1001, 0.1001), 0, True),  # just above chance, no spread
        ((0.5, 0.5), 2, False),  # two finished seeds are not enough
    ],
)
def test_a_point_learns_with_enough_seeds_above_chance(accuracy, diverged_runs, learns):
    assert MIN_FINISHED_SEEDS == 3
    assert runs(accuracy=accuracy, diverged_runs=diverged_runs).learns is learns


# -- 40 % -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dead", "verdict"),
    [
        ((0.40, 0.40, 0.40), S),  # lower bound at 40 %: supported
        ((0.55, 0.58, 0.60), S),
        ((0.3999, 0.3999, 0.3999), R),  # upper bound just below
        ((0.10, 0.12, 0.11), R),
        ((0.30, 0.50, 0.40), N),  # the interval contains 40 %
    ],
)
def test_forty_percent_rule_from_the_interval(dead, verdict):
    outcome = forty_percent.judge(TrainingEvidence((runs(dead=dead, accuracy=(0.5,) * 3),)))
    assert outcome.verdict is verdict


def test_forty_percent_cites_the_strongest_learning_setting_and_ignores_collapsed_ones():
    collapsed = runs(lr=3.0, optimizer="sgd", dead=(0.9,) * 3, accuracy=(0.1,) * 3)
    strong = runs(lr=0.03, dead=(0.57, 0.585, 0.60), accuracy=(0.47,) * 3)
    weak = runs(lr=0.01, dead=(0.1, 0.12, 0.11), accuracy=(0.6,) * 3)
    outcome = forty_percent.judge(TrainingEvidence((collapsed, strong, weak)))
    assert outcome.verdict is S
    assert "lr 0.03" in outcome.setting and "lr 3" not in outcome.setting
    only_collapsed = forty_percent.judge(TrainingEvidence((collapsed,)))
    assert only_collapsed.verdict is N


# -- remedies ---------------------------------------------------------------------------------
def relu_losing():
    return runs(dead=(0.58, 0.59, 0.585, 0.58), accuracy=(0.47, 0.48, 0.47, 0.475))


@pytest.mark.parametrize(
    ("remedy", "verdict"),
    [
        (dict(dead=(0.0,) * 4, accuracy=(0.47, 0.48, 0.47, 0.475)), S),  # within ReLU's interval
        (dict(dead=(0.0,) * 4, accuracy=(0.6,) * 4), S),
        (dict(dead=(0.0,) * 4, accuracy=(0.3, 0.31, 0.3, 0.3)), R),  # lower accuracy
        (dict(dead=(0.1, 0.12, 0.11, 0.1), accuracy=(0.5,) * 4), R),  # units dead
        (dict(dead=(0.0,), accuracy=(0.5,), diverged_runs=3), R),  # more diverged than ReLU
    ],
)
def test_a_remedy_fixes_or_fails_by_accuracy_divergence_and_death(remedy, verdict):
    evidence = TrainingEvidence((relu_losing(), runs(activation="leaky_relu", **remedy)))
    assert remedies.judge(evidence).verdict is verdict


def test_remedies_are_judged_at_every_setting_where_relu_learns_and_loses_units():
    second = runs(lr=0.3, optimizer="momentum", dead=(0.3, 0.32, 0.31), accuracy=(0.4,) * 3)
    evidence = TrainingEvidence(
        (
            relu_losing(),
            runs(activation="elu", zero_grad=None, inactive=(0.4,) * 4),
            second,
            runs(activation="elu", lr=0.3, optimizer="momentum", accuracy=(0.5,), diverged_runs=3),
        )
    )
    outcome = remedies.judge(evidence)
    assert outcome.verdict is M
    assert len(outcome.details) == 2
    assert "never active 40.0 %" in outcome.details[0]


def test_remedies_not_testable_where_relu_never_loses_units_while_learning():
    collapsed = runs(dead=(0.5,) * 3, accuracy=(0.1,) * 3)
    assert remedies.judge(TrainingEvidence((collapsed,))).verdict is N


# -- vanishing ----------------------------------------------------------------------------------
def ratio(activation, mean, low, high, depth=10, init="default", zero_grad=None):
    row = {"activation": activation, "zero_grad": zero_grad, "lr": 0.001, "init": init}
    if activation == "relu":
        row["zero_grad"] = 0.0
    return questions.GradientRatio(
        row=tuple(row.items()), depth=depth, ratio=Interval(mean, low, high, 4), measure="dL/dz"
    )


@pytest.mark.parametrize(
    ("factor", "verdict"),
    [
        ((0.9, 0.9, 0.95), S),
        ((0.99, 0.97, 1.01), S),
        ((0.41, 0.40, 0.42), R),
        ((0.9, 0.8, 0.95), N),
    ],
)
def test_absolute_vanishing_per_layer_factor_against_the_floor(factor, verdict):
    mean, low, high = (f**9 for f in factor)  # ten layers: nine steps
    outcome = vanishing.absolute((ratio("relu", mean, low, high),))
    assert outcome.verdict is verdict


@pytest.mark.parametrize(
    ("relu", "verdict"),
    [((1e-3, 8e-4, 1.2e-3), S), ((1e-8, 1e-9, 1e-7), R), ((1e-5, 1e-6, 1e-3), N)],
)
def test_relative_vanishing_against_sigmoid_and_tanh(relu, verdict):
    evidence = (
        ratio("relu", *relu),
        ratio("sigmoid", 1e-5, 5e-6, 2e-5),
        ratio("tanh", 2e-5, 1e-5, 4e-5),
    )
    assert vanishing.relative(evidence).verdict is verdict


def test_vanishing_is_judged_per_init():
    evidence = (
        ratio("relu", 0.41**9, 0.40**9, 0.42**9, init="default"),
        ratio("relu", 0.99**9, 0.97**9, 1.01**9, init="kaiming_normal"),
    )
    outcome = vanishing.absolute(evidence)
    assert outcome.verdict is M
    assert any("Kaiming" in d for d in outcome.details)


# -- Q1 ---------------------------------------------------------------------------------------
def cell(differ, precision="float32"):
    return questions.BifurcationCell(precision, 256, 3, differ, 96, 0.0, 0.1, 46e6, "cpu x")


@pytest.mark.parametrize(("differ", "verdict"), [(0, S), (1, R), (37, R)])
def test_one_bitwise_difference_refutes_never(differ, verdict):
    assert gradient_changes.judge((cell(0, "float64"), cell(differ))).verdict is verdict


def twin(differences, controls, departed=None):
    return questions.TwinPoint(
        row=(("activation", "relu"), ("zero_grad", 1.0), ("lr", 0.01)),
        seeds=4,
        departed=len(differences) if departed is None else departed,
        differences=tuple(differences),
        controls=controls,
    )


def test_twins_that_never_parted_support_no_change():
    assert accuracy_unchanged.judge((twin((), (), departed=0),)).verdict is S


def test_twins_against_controls_as_distributions():
    small = (0.01, -0.02, 0.015, -0.01, 0.02, 0.01)
    large = (0.15, -0.12, 0.18, -0.14, 0.16, 0.13)
    assert accuracy_unchanged.judge((twin(small, large),)).verdict is S
    refuted = accuracy_unchanged.judge((twin(large, small),))
    assert refuted.verdict is R and refuted.p_value < 0.05


def test_a_parted_point_without_control_is_not_testable_and_named():
    other = questions.TwinPoint(
        row=(("activation", "relu"), ("zero_grad", 1.0), ("lr", 0.03)),
        seeds=4,
        departed=0,
        differences=(),
        controls=(),
    )
    outcome = accuracy_unchanged.judge((twin((0.1, 0.2, 0.1), NotMeasured("no control")), other))
    assert outcome.verdict is N
    assert outcome.measured.endswith("not testable (no control): relu (f'(0)=1), lr 0.01")


# -- revival, cost, sparsity, born dead -------------------------------------------------------
@pytest.mark.parametrize(("revived", "verdict"), [((0, 0), S), ((3, 5), R), ((0, 5), M)])
def test_revival_rule_over_pooled_units(revived, verdict):
    counts = tuple(
        questions.RevivalCount("sgd", "died in training", group, 8, 100, n)
        for group, n in zip(("first hidden layer", "deeper hidden layers"), revived, strict=True)
    )
    outcome = irreversible.judge(counts)
    assert outcome.verdict is verdict
    assert "snapshot" in outcome.setting


GROUPS = ("first hidden layer", "deeper hidden layers")


@pytest.mark.parametrize(
    ("step_revived", "verdict"),
    [((0, 0), S), ((1, 0), M), ((0, 5), M), ((1, 1), R), ((3, 5), R)],
)
def test_revival_rule_rests_on_the_step_level_counts_beside_the_snapshot_ones(
    step_revived, verdict
):
    # At snapshots both groups revive (refuted there); the verdict is that of the steps.
    counts = tuple(
        questions.RevivalCount("sgd", "died in training", group, 8, 100, 10, 40, n)
        for group, n in zip(GROUPS, step_revived, strict=True)
    )
    outcome = irreversible.judge(counts)
    assert outcome.verdict is verdict
    total = sum(step_revived)
    assert outcome.headline.startswith(f"{total}/80 ({total / 80:.1%}".replace("%", " %"))
    assert "20/200 (10.0 %) at epoch-end snapshots" in outcome.headline
    assert all("over steps" in d and "at snapshots" in d for d in outcome.details)
    assert "whole epoch" in outcome.setting and "snapshot" in outcome.setting


def test_units_dead_only_at_snapshots_leave_irreversibility_not_testable():
    counts = tuple(
        questions.RevivalCount("sgd", "died in training", group, 8, 14, 10, 0, 0)
        for group in GROUPS
    )
    outcome = irreversible.judge(counts)
    assert outcome.verdict is N
    assert "no ReLU unit was dead over a whole epoch's training steps" in outcome.reason
    assert "20/28" in outcome.reason


def test_revival_falls_back_to_snapshots_where_steps_were_not_recorded():
    counts = (
        questions.RevivalCount("sgd", "died in training", GROUPS[0], 8, 100, 0, 40, 0),
        questions.RevivalCount("sgd", "died in training", GROUPS[1], 8, 100, 5),
    )
    outcome = irreversible.judge(counts)
    assert outcome.verdict is M
    assert "not recorded" in outcome.setting
    assert outcome.headline == "5/200 (2.5 %) ReLU units revived at epoch-end snapshots"


def test_revival_share_is_a_wilson_interval_inside_zero_one():
    share = questions.RevivalCount("sgd", "died in training", "deeper", 8, 526, 19).share
    assert 0 < share.low < 19 / 526 < share.high < 0.06


@pytest.mark.parametrize(
    ("verdicts", "verdict"),
    [(("dearer", "dearer"), S), (("same", "cheaper"), R), (("dearer", "same"), M)],
)
def test_cheaper_rests_on_the_benchmarks_null(verdicts, verdict):
    ratios = tuple(
        questions.CostRatio(name, Interval(1.1, 1.0, 1.2, 0), v, "cpu model X")
        for name, v in zip(("tanh", "elu"), verdicts, strict=True)
    )
    outcome = cheaper.judge(questions.CostEvidence(True, "a whole training step", ratios))
    assert outcome.verdict is verdict and "cpu model X" in outcome.setting


@pytest.mark.parametrize(
    ("relu", "verdict"), [((0.5, 0.45, 0.55), S), ((0.01, 0.0, 0.02), R), ((0.1, 0.0, 0.3), N)]
)
def test_sparse_against_the_sparsest_smooth_activation(relu, verdict):
    training = TrainingEvidence((runs(),))
    axes = dict(runs().axes)
    rows = (
        questions.Sparsity(runs().point, tuple(axes.items()), Interval(*relu, 3)),
        questions.Sparsity(
            "gelu",
            tuple({**axes, "activation": "gelu", "zero_grad": None}.items()),
            Interval(0.1, 0.05, 0.15, 3),
        ),
    )
    assert sparse.judge(rows, training).verdict is verdict


@pytest.mark.parametrize(
    ("deep", "verdict"),
    [
        (Interval(0.9, 0.8, 1.0, 32), S),
        (Interval(0.0, 0.0, 0.1, 32), R),
        (Interval(0.3, 0.15, 0.5, 32), N),
    ],
)
def test_born_dead_deepest_against_shallowest(deep, verdict):
    rows = (
        questions.BornDeadDepths("default", 2, 32, (2, Interval(0.3, 0.2, 0.45, 32)), (32, deep)),
    )
    assert born_dead.judge(rows).verdict is verdict


# -- missing evidence and multiplicity ---------------------------------------------------------
def test_a_missing_table_is_not_measured_and_a_missing_column_is_loud():
    import pandas as pd

    assert isinstance(questions.bifurcation(None), NotMeasured)
    assert gradient_changes.judge(questions.bifurcation(None)).verdict is N
    with pytest.raises(ValueError, match="differ"):
        questions.bifurcation(pd.DataFrame({"precision": ["float32"], "width": [1]}))


def test_bifurcation_keeps_the_default_gemm_path_only():
    import pandas as pd

    table = pd.DataFrame(
        {
            "precision": ["float32"] * 2,
            "width": [256] * 2,
            "depth": [3] * 2,
            "differ": [10, 0],
            "inits": [32] * 2,
            "ci_low": [0.1, 0.0],
            "ci_high": [0.5, 0.1],
            "gemm_path": ["default", "compatible"],
        }
    )
    (kept,) = questions.bifurcation(table)
    assert kept.differ == 10


def test_holm_step_down():
    assert holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None])


def test_a_verdict_whose_test_is_not_significant_after_holm_becomes_not_testable():
    outcomes = [
        Outcome("a", S, "", "", "rule", "a", p_value=0.03),
        Outcome("b", R, "", "", "rule", "b", p_value=0.04),
        Outcome("c", R, "", "", "exact", "c"),
    ]
    adjusted = claims.adjust(outcomes)
    assert [o.verdict for o in adjusted] == [N, N, R]
    assert adjusted[0].p_adjusted == pytest.approx(0.06)
    strong = claims.adjust([Outcome("a", S, "", "", "rule", "a", p_value=0.001)] * 3)
    assert all(o.verdict is S for o in strong)


def test_whole_step_cost_counts_only_smooth_activations_each_optimizer_labelled():
    import pandas as pd

    from relulab.report.evidence import questions

    rows = [
        ("relu", "adam", 1.0, "reference"),
        ("leaky_relu", "adam", 1.6, "dearer"),
        ("gelu", "adam", 1.3, "dearer"),
        ("gelu", "sgd", 1.0, "same"),
    ]
    step = pd.DataFrame(
        [
            {
                "activation": a,
                "optimizer": o,
                "ratio_to_relu": r,
                "ratio_low": r - 0.1,
                "ratio_high": r + 0.1,
                "verdict": v,
            }
            for a, o, r, v in rows
        ]
    )
    evidence = questions.cost(step, None)
    assert evidence.whole_step
    assert [r.activation for r in evidence.ratios] == ["gelu, adam", "gelu, sgd"]
    assert [r.verdict for r in evidence.ratios] == ["dearer", "same"]
