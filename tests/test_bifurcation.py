"""The bifurcation measurement: Wilson intervals, bitwise gradient comparison, the workflow."""

import math

import pandas as pd
import pytest
import torch
import yaml
from helpers.workflow import scratch_copy, snakemake
from scipy import stats

from relulab.experiments import bifurcation
from relulab.figures import bifurcation as figure
from relulab.train.stacked import build_stack


# -- Wilson interval ----------------------------------------------------------------------------
def test_wilson_interval_matches_the_formula_and_stays_in_unit_interval():
    low, high = bifurcation.wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)
    low, high = bifurcation.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = bifurcation.wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0
    assert all(math.isnan(v) for v in bifurcation.wilson_interval(0, 0))
    with pytest.raises(ValueError):
        bifurcation.wilson_interval(11, 10)


def test_wilson_interval_covers_about_95_percent():
    # Exact coverage under the binomial distribution, not a simulation.
    for n, p in [(20, 0.05), (50, 0.3), (200, 0.46), (40, 0.9)]:
        coverage = sum(
            stats.binom.pmf(k, n, p)
            for k in range(n + 1)
            if bifurcation.wilson_interval(k, n)[0] <= p <= bifurcation.wilson_interval(k, n)[1]
        )
        assert 0.92 <= coverage <= 0.99, (n, p, coverage)


def test_wider_with_fewer_trials():
    narrow = bifurcation.wilson_interval(460, 1000)
    wide = bifurcation.wilson_interval(46, 100)
    assert wide[1] - wide[0] > narrow[1] - narrow[0]
    assert narrow[0] < 0.46 < narrow[1]


# -- bitwise comparison -------------------------------------------------------------------------
def _data(n=40, features=6, classes=3):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, features, generator=g, dtype=torch.float64), torch.arange(n) % classes


def _planted_stack(dtype, inits=3):
    """Unit 0 of the first layer has incoming weights 1e-9 and bias 0: its pre-activation is
    about 1e-8 in float64, but 1e-9 underflows to 0 in float16, so there it is exactly 0."""
    stack = build_stack(
        list(range(inits)), 6, 3, 8, 2, "relu", 0.0, False, "default", torch.float64
    )
    with torch.no_grad():
        stack.weights[0][:, 0, :] = 1e-9
        stack.biases[0][:, 0] = 0.0
    return stack.to(dtype)


def test_planted_zero_differs_in_float16_and_not_in_float64():
    x, y = _data()
    results = {}
    for dtype in (torch.float64, torch.float16):
        stack = _planted_stack(dtype)
        results[dtype] = bifurcation.compare_gradients(stack, x.to(dtype), y, batch_size=16)
    exact = results[torch.float64]
    assert exact["batches"] == 3
    assert not exact["differ"].any()
    assert exact["first_differing_batch"].tolist() == [-1, -1, -1]
    assert exact["max_grad_diff_norm"].tolist() == [0.0, 0.0, 0.0]
    half = results[torch.float16]
    assert half["differ"].all()
    assert half["first_differing_batch"].tolist() == [0, 0, 0]
    assert (half["differing_batches"] == 3).all()
    # Unit 0 is exactly 0 on all 40 examples (others may add a few zeros of their own).
    assert (half["exact_zeros"] >= 40).all()
    assert (half["live_exact_zeros"] >= 1).all()
    assert (half["max_grad_diff_norm"] > 0).all()


def test_comparison_leaves_the_weights_and_zero_grad_as_they_were():
    x, y = _data()
    stack = _planted_stack(torch.float16)
    before = [p.detach().clone() for p in stack.parameters()]
    bifurcation.compare_gradients(stack, x.half(), y, batch_size=16)
    for a, b in zip(before, stack.parameters(), strict=True):
        assert torch.equal(bifurcation.bits(a), bifurcation.bits(b))
    assert all(act.zero_grad == 0.0 for act in stack.acts)


def test_bits_tell_signed_zeros_apart():
    a = torch.tensor([0.0, 1.0])
    b = torch.tensor([-0.0, 1.0])
    assert torch.equal(a, b)
    assert not torch.equal(bifurcation.bits(a), bifurcation.bits(b))


def test_measure_rows_and_table_in_float64():
    x, y = _data(n=64)
    per_init = bifurcation.measure_grid(
        x, y, "float64", widths=[8, 16], depths=[1, 2], batch_size=32, inits=5, dataset="toy"
    )
    assert list(per_init.columns) == bifurcation.INIT_COLUMNS
    assert len(per_init) == 2 * 2 * 5
    assert not per_init["differ"].any()
    assert (per_init["batches"] == 2).all()
    assert (per_init["pre_activations"] == 64 * per_init["width"] * per_init["depth"]).all()
    table = bifurcation.table(per_init)
    for column in [
        "precision",
        "width",
        "depth",
        "batch_size",
        "inits",
        "fraction_differ",
        "ci_low",
        "ci_high",
        "exact_zero_rate",
    ]:
        assert column in table.columns
    assert len(table) == 4
    assert (table["inits"] == 5).all() and (table["fraction_differ"] == 0).all()
    assert (table["ci_low"] == 0).all() and (table["ci_high"] > 0.4).all()


def test_same_initialisations_in_every_precision():
    x, y = _data(n=32)
    a = bifurcation.measure(x, y, "float32", 8, 1, 16, [3, 7])
    b = bifurcation.measure(x, y, "bfloat16", 8, 1, 16, [3, 7])
    assert a["init"].tolist() == b["init"].tolist() == [3, 7]
    chunked = bifurcation.measure(x, y, "float32", 8, 1, 16, [3, 7], inits_at_once=1)
    pd.testing.assert_frame_equal(a, chunked)


def test_table_aggregates_a_known_count():
    rows = [
        {
            "dataset": "toy",
            "activation": "relu",
            "precision": "float32",
            "width": 4,
            "depth": 1,
            "batch_size": 2,
            "zero_grad": 1.0,
            "init": i,
            "batches": 10,
            "pre_activations": 100,
            "differ": i < 3,
            "differing_batches": 2 if i < 3 else 0,
            "first_differing_batch": 4 if i < 3 else -1,
            "exact_zeros": 1 if i < 3 else 0,
            "live_exact_zeros": 1 if i < 3 else 0,
            "max_grad_diff_norm": 0.5 if i < 3 else 0.0,
        }
        for i in range(10)
    ]
    table = bifurcation.table(pd.DataFrame(rows))
    row = table.iloc[0]
    assert row["differ"] == 3 and row["fraction_differ"] == 0.3
    assert row["exact_zeros"] == 3 and row["exact_zero_rate_note"] == ""
    low, high = bifurcation.garwood_interval(3, 1000)
    assert (row["exact_zero_rate_ci_low"], row["exact_zero_rate_ci_high"]) == (low, high)
    assert row["predicted_fraction_differ"] == pytest.approx(1 - math.exp(-0.3))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(bifurcation.wilson_interval(3, 10))
    assert row["exact_zero_rate"] == pytest.approx(3 / 1000)
    assert row["first_differing_batch_median"] == 4
    assert row["differing_batch_fraction"] == pytest.approx(6 / 100)


def test_plot_writes_png_and_svg(tmp_path):
    x, y = _data(n=32)
    per_init = pd.concat(
        [
            bifurcation.measure_grid(x, y, precision, [8], [1, 2], 16, 3, dataset="toy")
            for precision in ("float64", "float32", "float16")
        ]
    )
    figure.plot(bifurcation.table(per_init), tmp_path / "bifurcation.png")
    assert (tmp_path / "bifurcation.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (tmp_path / "bifurcation.svg").read_text()[:2000]


# -- exposure, rates and the cheap path -----------------------------------------------------------
def test_predicted_fraction_at_the_papers_exposure():
    # The paper's 46 % at 60,000 x 768 pre-activations implies about 1.3e-8 per pre-activation.
    paper = bifurcation.PAPER_POINTS[1]
    assert paper.precision == "float32" and paper.pre_activations_per_init == 46_080_000
    rate = 1.3e-8
    assert bifurcation.predicted_fraction(rate, paper.pre_activations_per_init) == pytest.approx(
        0.45, abs=0.01
    )
    # MNIST-1D's 4,000 examples at 3x256 expect about 4 %: about 1 in 32.
    assert bifurcation.predicted_fraction(rate, 4000 * 768) == pytest.approx(0.039, abs=0.002)
    assert bifurcation.predicted_fraction(0.0, 1e12) == 0.0
    exposure = bifurcation.exposure_for(0.46, rate)
    assert bifurcation.predicted_fraction(rate, exposure) == pytest.approx(0.46)
    assert bifurcation.exposure_for(0.5, 0.0) == math.inf


def _cancelling_data(n=96, features=6):
    """Inputs in {-1, 0, 1}: in bfloat16 some pre-activations cancel to exactly 0."""
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-1, 2, (n, features), generator=g).double()
    return x, torch.arange(n) % 3


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
def test_skipping_batches_without_zeros_changes_no_result(precision):
    x, y = _cancelling_data()
    full = bifurcation.measure(x, y, precision, 32, 2, 16, 4, skip_batches_without_zeros=False)
    cheap = bifurcation.measure(x, y, precision, 32, 2, 16, 4)
    columns = [c for c in bifurcation.INIT_COLUMNS if c != "batches_with_both_passes"]
    pd.testing.assert_frame_equal(full[columns], cheap[columns])
    assert (full["batches_with_both_passes"] == 6).all()
    if precision == "bfloat16":  # some batches hold zeros and some inits differ, not all
        assert 0 < cheap["batches_with_both_passes"].iloc[0] < 6
        assert 0 < cheap["differ"].sum() < 4
    else:  # no zero at all: no backward pass
        assert (cheap["batches_with_both_passes"] == 0).all()


def test_cheap_path_still_finds_a_planted_zero():
    x, y = _data()
    stack = _planted_stack(torch.float16)
    result = bifurcation.compare_gradients(stack, x.half(), y, batch_size=16)
    assert result["differ"].all() and result["batches_with_both_passes"] == 3
    exact = bifurcation.compare_gradients(_planted_stack(torch.float64), x, y, batch_size=16)
    assert exact["batches_with_both_passes"] == 0 and not exact["differ"].any()


def test_first_layer_comparison_sees_a_subset_of_the_differences():
    x, y = _data()
    every = bifurcation.compare_gradients(_planted_stack(torch.float16), x.half(), y, 16)
    first = bifurcation.compare_gradients(
        _planted_stack(torch.float16), x.half(), y, 16, compare="first_layer"
    )
    assert (first["differing_batches"] <= every["differing_batches"]).all()
    # The planted unit is in the first layer: its weight gradient row changes too.
    assert first["differ"].all()
    with pytest.raises(ValueError, match="compare"):
        bifurcation.compare_gradients(_planted_stack(torch.float16), x.half(), y, 16, compare="x")


def test_table_reports_rate_interval_prediction_and_the_bound_without_zeros():
    x, y = _data(n=64)
    per_init = bifurcation.measure(x, y, "float64", 8, 1, 32, 5, dataset="toy", inputs="raw")
    row = bifurcation.table(per_init).iloc[0]
    assert row["exact_zeros"] == 0 and row["exact_zero_rate"] == 0
    assert row["exact_zero_rate_ci_low"] == 0
    assert row["exact_zero_rate_ci_high"] == pytest.approx(3.689 / (5 * 64 * 8), rel=1e-3)
    assert row["exact_zero_rate_note"].startswith("no exact zero seen")
    assert row["predicted_fraction_differ"] == 0
    assert row["inputs"] == "raw" and row["compare"] == "all"
    assert row["device"].startswith("cpu")
    assert row["pre_activations_per_init"] == 64 * 8


# -- workflow -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_workflow_makes_the_bifurcation_table_and_figure(tmp_path):
    workdir = scratch_copy(tmp_path / "study")
    targets = [
        "results/tables/bifurcation.csv",
        "results/tables/bifurcation.html",
        "results/figures/bifurcation.svg",
    ]
    snakemake(workdir, *targets, "--cores", "2", "--configfile", "config/smoke.yaml")
    smoke = yaml.safe_load((workdir / "config/smoke.yaml").read_text())["bifurcation"]
    table = pd.read_csv(workdir / "results/tables/bifurcation.csv")
    assert sorted(table["precision"]) == sorted(smoke["precisions"])
    assert (table["inits"] == smoke["inits"]).all()
    assert table["fraction_differ"].between(0, 1).all()
    assert (table["ci_low"] <= table["fraction_differ"]).all()
    assert (table["fraction_differ"] <= table["ci_high"]).all()
    assert (table.loc[table["precision"] == "float64", "differ"] == 0).all()
    inits = pd.read_csv(workdir / "results/tables/bifurcation_inits.csv")
    assert len(inits) == smoke["inits"] * len(smoke["precisions"])
    assert "<table" in (workdir / "results/tables/bifurcation.html").read_text()


@pytest.mark.slow
def test_paper_scale_configuration_passes_a_dry_run(tmp_path):
    workdir = scratch_copy(tmp_path / "paper")
    result = snakemake(
        workdir, "--cores", "2", "--configfile", "config/paper-bifurcation.yaml", "-n"
    )
    out = result.stdout + result.stderr
    assert "bifurcation_table" in out
    assert "relu_zg1_lr0.1_float16_d3_nobn" in out
    config = yaml.safe_load((workdir / "config/paper-bifurcation.yaml").read_text())
    assert config["dataset"] == config["bifurcation"]["dataset"] == "mnist"
    assert config["bifurcation"]["inits"] == 1000
    assert config["bifurcation"]["widths"] == [256] and config["bifurcation"]["depths"] == [3]
    assert config["bifurcation"]["batch_size"] == 256


def test_settings_give_architectures_and_inits_per_precision():
    settings = {"widths": [64, 256], "depths": [1, 3], "inits": 96, "architectures": []}
    assert bifurcation.architectures(settings) == [(64, 1), (64, 3), (256, 1), (256, 3)]
    settings["architectures"] = [{"width": 16, "depth": 3}, {"width": 256, "depth": 6}]
    assert bifurcation.architectures(settings) == [(16, 3), (256, 6)]
    assert bifurcation.inits_of(settings, "float64") == 96
    settings["inits_by_precision"] = {"float64": 32}
    assert bifurcation.inits_of(settings, "float64") == 32
    assert bifurcation.inits_of(settings, "float32") == 96
