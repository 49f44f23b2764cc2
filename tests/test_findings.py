"""The findings page: a summary first, then the claims table with short cells, then the
sections; every item labelled with the settings that vary; standalone HTML; missing tables
said. Wording is tested on a few golden sentences, everything else on structure."""

import dataclasses
import functools
import hashlib
import itertools
import math

import pandas as pd
import pytest
from helpers.findings_study import inputs_of, point

from relulab.report import findings, render
from relulab.report.evidence.runs import DIVERGED_LOSS
from relulab.report.inputs import SOURCES, Finding, Section
from relulab.report.outcome import NotMeasured, Verdict
from relulab.study import grid


def small_study():
    """A fresh copy (tests set its optional tables) of one small study."""
    return dataclasses.replace(_small_study())


@functools.cache
def _small_study():
    return inputs_of(
        (point("relu", 0.01), {"dead": 0.2}),
        (point("relu", 0.03), {"dead": 0.55}),
        (point("leaky_relu", 0.03), {}),
        (point("elu", 0.03), {"loss": 1.5e17}),
        (point("sigmoid", 0.01), {"ratio": 0.01}),
        (point("relu", 0.01, depth=4), {}),
        (point("sigmoid", 0.01, depth=4), {"ratio": 0.001}),
    )


def outcome(report, key):
    return next(o for o in report.outcomes if o.key == key)


def test_the_page_opens_with_the_summary_then_the_claims_then_the_sections(tmp_path):
    findings.write(small_study(), tmp_path / "findings.md", tmp_path / "findings.html")
    markdown = (tmp_path / "findings.md").read_text()
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## Summary", "## Claims tested", "## The study"]
    assert headings[-1] == "## Claims in detail"
    page = (tmp_path / "findings.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<title>relulab findings</title>" in page
    assert "<style>" in page and page.index('id="summary"') < page.index('id="claims"')
    assert page.index('id="claims"') < page.index('id="q1"')


def test_claims_table_cells_are_short_and_link_to_their_details():
    report = findings.build(small_study())
    from relulab.report import wording

    table = wording.claims_table(report.outcomes)
    assert table["key number"].str.len().max() <= 160
    assert list(table["details"]) == [f"claim-{o.key}" for o in report.outcomes]
    assert len(wording.summary(report.outcomes)) == len(report.outcomes)


def test_a_run_with_a_loss_far_above_the_untrained_one_is_diverged_everywhere():
    report = findings.build(small_study())
    remedies = outcome(report, "remedies")
    assert remedies.verdict is Verdict.MIXED  # Leaky ReLU fixes it, the diverged ELU fails
    assert any("elu: 3/3 diverged" in d for d in remedies.details)


def test_golden_divergence_sentence():
    report = findings.build(small_study())
    study = report.sections[0]
    assert study.findings[1].text == (
        f"3 of 21 runs diverged: final training loss NaN, infinite or above {DIVERGED_LOSS:.2f} "
        "(twice an untrained network's ln 10): elu (3/3). They are counted as diverged in every "
        "claim and left out of its means."
    )


def test_golden_summary_line_of_the_forty_percent_claim():
    from relulab.report import wording

    report = findings.build(small_study())
    line = next(s for s in wording.summary(report.outcomes) if s.anchor == "claim-forty_percent")
    assert (line.question, line.answer) == (
        "Q2. Can 40 % of a network die at a high learning rate?",
        "Yes",
    )
    assert line.key_number == "55.0 % [55.0, 55.0] dead (relu (f'(0)=0), lr 0.03, 2 hidden layers)"


@functools.cache
def every_axis_varies():
    """Points such that every grid axis takes two values (ReLU at two f'(0) values)."""
    specs = []
    for activation, zero_grad, lr, optimizer, precision, depth, init, norm in itertools.product(
        ("relu", "sigmoid"),
        (0.0, 1.0),
        (0.01, 0.03),
        ("adam", "sgd"),
        ("float32", "mixed_float16"),
        (2, 4),
        ("default",),
        (False,),
    ):
        if activation == "sigmoid" and zero_grad == 1.0:
            continue
        specs.append(
            (
                point(activation, lr, optimizer, depth, init, zero_grad, precision, norm),
                {"dead": 0.3 if activation == "relu" else 0.0},
            )
        )
    specs += [
        (point("relu", 0.01, init="kaiming_normal"), {"dead": 0.1}),
        (point("relu", 0.01, batch_norm=True), {"dead": 0.05}),
        (point("sigmoid", 0.01, batch_norm=True), {}),
    ]
    return inputs_of(*specs)


def test_every_axis_of_the_grid_varies_in_the_label_study():
    inputs = every_axis_varies()
    varying = {a for a in grid.AXES if inputs.summary[a].nunique(dropna=False) > 1}
    assert varying == set(grid.AXES)


@functools.cache
def every_axis_report():
    return findings.build(every_axis_varies())


def test_no_two_items_of_one_sentence_carry_the_same_label():
    report = every_axis_report()
    listed = 0
    for section in report.sections:
        for finding in section.findings:
            assert len(set(finding.items)) == len(finding.items), finding.text
            listed += len(finding.items) > 1
    assert listed >= 5


def test_a_sentence_over_mixed_precision_names_its_precision():
    report = every_axis_report()
    q2 = next(s for s in report.sections if s.anchor == "q2")
    by_lr = [f for f in q2.findings if f.text.startswith("With ReLU (f'(0)=0) and")]
    contexts = [f.text.split(", the final dead fraction")[0] for f in by_lr]
    assert len(contexts) == len(set(contexts)) >= 4
    assert any("mixed_float16" in c for c in contexts) and any("float32" in c for c in contexts)


def test_every_finding_points_at_a_table_or_figure():
    known = set(SOURCES.values())
    for section in findings.build(small_study()).sections:
        for finding in section.findings:
            if "not run" in finding.text or "not timed" in finding.text:
                continue
            assert finding.sources, finding.text
            assert set(finding.sources) <= known


def test_missing_optional_tables_are_not_measured_and_the_rest_still_written(tmp_path):
    report = findings.build(small_study())
    for key in ("fprime_gradient", "fprime_accuracy", "cheaper", "born_dead"):
        assert outcome(report, key).verdict is Verdict.NOT_TESTABLE
        assert "not run" in outcome(report, key).reason
    assert outcome(report, "forty_percent").verdict is Verdict.SUPPORTED


def test_every_run_of_the_study_diverged_still_writes_a_report(tmp_path):
    inputs = inputs_of(
        (point("relu", 0.01), {"status": "diverged"}),
        (point("sigmoid", 0.01), {"status": "diverged"}),
    )
    findings.write(inputs, tmp_path / "findings.md", tmp_path / "findings.html")
    report = findings.build(inputs)
    assert outcome(report, "forty_percent").verdict is Verdict.NOT_TESTABLE
    assert "## Claims tested" in (tmp_path / "findings.md").read_text()


def cost_step(tanh_verdict="dearer"):
    machine = {
        "cpu_model": "EPYC 9B14",
        "cpu_capability": "AVX512",
        "torch_version": "2.5",
        "blas": "mkl",
        "threads": 2,
        "env": "",
    }
    return pd.DataFrame(
        [
            {
                "activation": "relu",
                "seconds_per_step": 1e-3,
                "ratio_to_relu": 1.0,
                "ratio_low": 0.98,
                "ratio_high": 1.02,
                "verdict": "same",
                **machine,
            },
            {
                "activation": "tanh",
                "seconds_per_step": 1.1e-3,
                "ratio_to_relu": 1.11,
                "ratio_low": 1.05,
                "ratio_high": 1.17,
                "verdict": tanh_verdict,
                **machine,
            },
            {
                "activation": "sigmoid",
                "seconds_per_step": 0.9e-3,
                "ratio_to_relu": 0.89,
                "ratio_low": 0.85,
                "ratio_high": 0.93,
                "verdict": "cheaper",
                **machine,
            },
        ]
    )


def test_cost_rests_on_the_whole_step_and_names_the_machine():
    inputs = small_study()
    inputs.cost_step = cost_step()
    cheaper = outcome(findings.build(inputs), "cheaper")
    assert cheaper.verdict is Verdict.MIXED
    assert "whole training step" in cheaper.setting and "EPYC 9B14" in cheaper.setting


def test_twins_that_parted_without_a_control_are_named_not_testable():
    inputs = small_study()
    inputs.zero_grad_effect = pd.DataFrame(
        {
            "activation": ["relu", "relu"],
            "zero_grad": [1.0, 1.0],
            "precision": ["float32", "float32"],
            "lr": [0.01, 0.03],
            "optimizer": ["adam", "adam"],
            "variant": ["relu (f'(0)=1)"] * 2,
            "seeds": [3, 3],
            "departed": [1, 2],
            "departed_accuracy_differences": ["seed 2: +1.50", "seed 0: -2.00; seed 1: +0.50"],
            "control_seeds": [0, 0],
            "control_accuracy_differences": ["", ""],
        }
    )
    report = findings.build(inputs)
    assert outcome(report, "fprime_accuracy").verdict is Verdict.NOT_TESTABLE
    q1 = next(s for s in report.sections if s.anchor == "q1")
    named = next(f for f in q1.findings if f.text.startswith("Not testable against a control"))
    assert named.items == ("lr 0.01", "lr 0.03") or len(set(named.items)) == 2
    parted = next(f for f in q1.findings if "parted from their f'(0)=0 twin" in f.text)
    assert len(parted.items) == 2 and len(set(parted.items)) == 2


def test_html_sources_link_from_results_and_from_the_zipped_report():
    section = Section(
        "Q", "q", [Finding("A finding.", ("figures/dead_heatmap.png", "tables/epochs.csv"))]
    )
    page = render.to_html(render.Report("study", [], [section]))
    digest = hashlib.sha256(b"results/figures/dead_heatmap.png").hexdigest()[:16]
    assert (
        f'href="figures/dead_heatmap.png" data-report-href="../{digest}/dead_heatmap.png"' in page
    )
    assert '<a class="source" href="tables/epochs.csv" target="_blank"' in page  # no report item
    assert render.LINK_SCRIPT in page


def test_tables_are_written_as_standalone_pages(tmp_path):
    from relulab.tables import summary

    summary.write_table(pd.DataFrame({"a": [1.0, math.pi]}), tmp_path / "t.csv")
    page = (tmp_path / "t.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<title>relulab table: t</title>" in page
    assert "<style>" in page and "3.1416" in page
    assert (tmp_path / "t.md").exists()


def test_depth_sentences_never_average_over_the_init():
    inputs = inputs_of(
        *[
            (point(activation, 0.01, depth=depth, init=init), {"ratio": ratio})
            for activation, ratio in (("relu", 0.5), ("sigmoid", 0.01))
            for depth in (2, 4)
            for init in ("default", "kaiming_normal")
        ],
        deep=lambda i: True,
    )
    q3 = next(s for s in findings.build(inputs).sections if s.anchor == "q3")
    auc = [f.text for f in q3.findings if "area under the validation-accuracy curve went" in f.text]
    assert len(auc) == 2
    assert sum("PyTorch default init" in t for t in auc) == 1
    assert sum("Kaiming normal init" in t for t in auc) == 1


def test_revival_is_pooled_over_relu_units_only():
    from relulab.report.evidence import questions

    inputs = inputs_of(
        (point("relu", 0.01), {"dead": 0.5, "revived": 0.5}),
        (point("leaky_relu", 0.01), {"dead": 0.5, "revived": 0.5}),
    )
    counts = questions.revival(inputs.layers, inputs.epochs, inputs.study)
    died = {c.layer_group: c.died for c in counts if c.cause == "died in training"}
    # 3 seeds x 4 units (half of a width-8 layer) per layer group: ReLU's only.
    assert died == {"deeper hidden layers": 12, "first hidden layer": 12}
    revived = {c.layer_group: c.revived for c in counts if c.cause == "died in training"}
    assert revived == {"deeper hidden layers": 6, "first hidden layer": 0}


def test_revival_is_judged_over_steps_where_the_runs_recorded_them():
    inputs = inputs_of((point("relu", 0.01), {"dead": 0.5, "revived": 0.5}))
    layers = inputs.layers
    snapshot = [c for c in layers.columns if c.startswith(("ever_dead", "revived", "perma"))]
    snapshot += [c for c in layers.columns if c.startswith(("born_dead", "died_in"))]
    # Over the steps the units that died stay dead: revived only at the snapshots.
    steps = {f"step_{c}": layers[c].where(layers["epoch"] > 0) for c in snapshot}
    steps = {c: v * 0 if "revived" in c else v for c, v in steps.items()}
    inputs = dataclasses.replace(inputs, layers=layers.assign(**steps))
    report = findings.build(inputs)
    irreversible = outcome(report, "irreversible")
    assert irreversible.verdict is Verdict.SUPPORTED
    assert irreversible.headline == (
        "0/24 (0.0 %) ReLU units revived after a whole epoch dead; 6/24 (25.0 %) at epoch-end "
        "snapshots"
    )
    q2 = next(s for s in report.sections if s.anchor == "q2")
    (revival,) = [f.text for f in q2.findings if f.text.startswith("Revival of ReLU units")]
    assert "0 of 12 units dead over a whole epoch's steps alive in a later epoch's" in revival
    assert "at epoch-end snapshots 6 of 12 units alive again" in revival


def test_golden_revival_counts_by_both_definitions():
    from relulab.report.evidence import questions
    from relulab.report.sections import q2

    both = questions.RevivalCount(
        "sgd", "died in training", "deeper hidden layers", 8, 14, 10, 4, 0
    )
    assert q2.revival_counts(both) == (
        "0 of 4 units dead over a whole epoch's steps alive in a later epoch's, 0.0 % "
        "[0.0, 49.0]; at epoch-end snapshots 10 of 14 units alive again at the last epoch, "
        "71.4 % [45.4, 88.3]"
    )
    snapshot_only = questions.RevivalCount("sgd", "born dead", "first hidden layer", 8, 14, 10)
    assert q2.revival_counts(snapshot_only) == (
        "10 of 14 units alive again at the last epoch, 71.4 % [45.4, 88.3]"
    )


def test_findings_rebuild_from_a_results_folder(tmp_path):
    from relulab.report.__main__ import main

    inputs = small_study()
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    for name, frame in {
        "summary": inputs.summary,
        "death": inputs.death,
        "revival": inputs.revival,
        "gradient_flow": inputs.gradient,
        "convergence": inputs.convergence,
        "epochs": inputs.epochs,
        "layers": inputs.layers,
        "convergence_best_lr": inputs.best_lr,
        "revival_pooled": inputs.revival_pooled,
    }.items():
        frame.to_csv(tables / f"{name}.csv", index=False)
    config = tmp_path / "config.yaml"
    config.write_text("study: rebuilt\nactivation: [relu]\nzero_grad: [0.0]\nlr: [0.01]\n")
    main([str(tmp_path / "results"), str(config)])
    text = (tmp_path / "results" / "findings.md").read_text()
    assert text.startswith("# relulab findings") and "Study `rebuilt`" in text


def bifurcation_cells():
    base = {
        "precision": "float32",
        "width": 256,
        "depth": 3,
        "dataset": "mnist1d_60k",
        "pre_activations_per_init": 46_080_000,
        "inits": 96,
        "fraction_differ": 37 / 96,
        "ci_low": 0.29,
        "ci_high": 0.49,
        "exact_zeros": 40,
        "exact_zero_rate": 9e-9,
        "exact_zero_rate_ci_low": 6.4e-9,
        "exact_zero_rate_ci_high": 1.2e-8,
        "predicted_fraction_differ": 0.34,
        "cpu_model": "AMD EPYC 9B14",
        "cpu_capability": "AVX512",
    }
    return pd.DataFrame(
        [
            {**base, "differ": 37, "gemm_path": "default"},
            {**base, "differ": 11, "gemm_path": "MKL_CBWR=COMPATIBLE"},
        ]
    )


def test_bitwise_results_name_their_machine_and_keep_the_default_gemm_path():
    inputs = small_study()
    inputs.bifurcation = bifurcation_cells()
    inputs.bifurcation_rates = pd.DataFrame(
        [
            {
                "precision": "float32",
                "cells": 4,
                "chi2": 9.8,
                "p_value": 0.02,
                "pooled_rate": 9e-9,
                "rate_low": 7e-9,
                "rate_high": 1.1e-8,
                "paper_exposure": 46_080_000,
                "expected_fraction_at_paper": 0.34,
            }
        ]
    )
    report = findings.build(inputs)
    gradient = outcome(report, "fprime_gradient")
    assert gradient.verdict is Verdict.REFUTED and "AMD EPYC 9B14" in gradient.setting
    assert "37/96" in gradient.headline
    q1 = next(s for s in report.sections if s.anchor == "q1")
    cells = [f for f in q1.findings if f.text.startswith("float32, 3 hidden layers of 256")]
    assert len(cells) == 1 and "37 of 96" in cells[0].text
    assert any("rejected" in f.text and "constant-rate" in f.text for f in q1.findings)


def test_rates_on_another_gemm_path_name_the_path_and_the_architectures():
    """Two rows for float32 (the default path, MKL_CBWR=COMPATIBLE) read as two settings."""
    from relulab.report.sections import q1

    rates = pd.DataFrame(
        {
            "gemm_path": ["default", "mkl_cbwr_compatible"],
            "precision": ["float32", "float32"],
            "cells": [4, 2],
            "architectures": ["1x64, 3x64, 1x256, 3x256", "3x64, 1x256"],
            "chi2": [9.4, 0.25],
            "p_value": [0.024, 0.77],
            "pooled_rate": [9.6e-9, 1.4e-8],
            "rate_low": [7.5e-9, 7.2e-9],
            "rate_high": [1.2e-8, 2.4e-8],
            "expected_fraction_at_paper": [0.36, 0.47],
        }
    )
    section = Section("Q1")
    q1.rate_findings(section, rates)
    default, other = (finding.text for finding in section.findings)
    assert default.startswith("float32: one exact-zero rate for all 4 architectures (1x64, 3x64")
    assert "rejected" in default and "not rejected" not in default
    assert other.startswith("On the MKL_CBWR=COMPATIBLE GEMM path, float32:")
    assert "(3x64, 1x256) is not rejected" in other


def gemm_path_table(default_differ, other_differ, shared):
    """``bifurcation_machine.csv`` rows: float32 at two architectures (4 initialisations each)
    on the default path and MKL_CBWR=COMPATIBLE, and float64 on the default path only."""
    rows = []
    for (width, depth), d, o, both in zip(
        [(64, 3), (256, 1)], default_differ, other_differ, shared, strict=True
    ):
        common = {"precision": "float32", "width": width, "depth": depth, "inits": 4}
        machine = {"cpu_model": "AMD EPYC 9B14", "cpu_capability": "AVX512"}
        rows.append({"gemm_path": "default", **common, "differ": d, "differ_on_both": both,
                     **machine, "env": math.nan})  # fmt: skip
        rows.append({"gemm_path": "mkl_cbwr_compatible", **common, "differ": o,
                     "differ_on_both": both, **machine, "env": "MKL_CBWR=COMPATIBLE"})  # fmt: skip
    return pd.DataFrame(rows)


def test_gemm_path_evidence_sums_a_precisions_cells_on_the_same_initialisations():
    from relulab.report.evidence import questions

    (count,) = questions.gemm_paths(gemm_path_table((2, 1), (1, 2), (1, 0)))
    assert (count.precision, count.other_path, count.architectures) == (
        "float32",
        "mkl_cbwr_compatible",
        "3x64, 1x256",
    )
    assert (count.inits, count.default_differ, count.other_differ, count.shared) == (8, 3, 3, 1)
    assert "AMD EPYC 9B14" in count.machine and "MKL_CBWR" not in count.machine
    assert not count.same_initialisations
    missing = questions.gemm_paths(None)
    assert isinstance(missing, NotMeasured) and "not run" in missing.reason
    default_only = gemm_path_table((2, 1), (1, 2), (1, 0))
    default_only = default_only[default_only["gemm_path"] == "default"]
    assert questions.gemm_paths(default_only) == NotMeasured(
        "the bifurcation was measured on the default GEMM path only"
    )


def test_golden_gemm_path_sentence():
    from relulab.report.evidence import questions
    from relulab.report.sections import q1

    section = Section("Q1")
    q1.gemm_path_findings(section, questions.gemm_paths(gemm_path_table((2, 1), (1, 2), (1, 0))))
    (finding,) = section.findings
    assert finding.text == (
        "The same initialisations on two GEMM paths of one machine (cpu model AMD EPYC 9B14; "
        "cpu capability AVX512): float32 (8 initialisations, 3x64, 1x256): 3 differ bitwise on "
        "the default path, 3 on MKL_CBWR=COMPATIBLE, 1 on both. Which initialisations bifurcate "
        "depends on the GEMM path: a bitwise result (an exact zero, a gradient that differs, an "
        "f'(0) twin) belongs to the kernel path that computed it, not to the network alone."
    )
    assert finding.sources == (SOURCES["bifurcation_machine"],)


@pytest.mark.parametrize(
    ("differ", "meaning"),
    [(((0, 0), (0, 0), (0, 0)), "No initialisation"), (((2, 1), (2, 1), (2, 1)), "The same")],
)
def test_gemm_path_sentence_says_what_equal_or_empty_counts_mean(differ, meaning):
    from relulab.report.evidence import questions
    from relulab.report.sections import q1

    section = Section("Q1")
    q1.gemm_path_findings(section, questions.gemm_paths(gemm_path_table(*differ)))
    (finding,) = section.findings
    assert f". {meaning}" in finding.text


def test_q1_reads_the_gemm_path_table_when_the_study_has_it():
    inputs = small_study()
    inputs.bifurcation = bifurcation_cells()
    q1 = next(s for s in findings.build(inputs).sections if s.anchor == "q1")
    assert any("not measured: the bifurcation on a second" in f.text for f in q1.findings)
    inputs.bifurcation_machine = gemm_path_table((2, 1), (1, 2), (1, 0))
    q1 = next(s for s in findings.build(inputs).sections if s.anchor == "q1")
    assert sum(f.text.startswith("The same initialisations on two GEMM") for f in q1.findings) == 1


def test_a_pipe_inside_a_markdown_cell_is_not_a_column_separator():
    import re

    from relulab.report.render import markdown_table

    table = pd.DataFrame({"claim": ["f'(0) and accuracy"], "key number": ["median |Δ| 1.6"]})
    header, rule, row = markdown_table(table).splitlines()
    separators = [len(re.findall(r"(?<!\\)\|", line)) for line in (header, rule, row)]
    assert separators == [3, 3, 3]
    assert "\\|Δ\\|" in row
