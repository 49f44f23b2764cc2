"""Machine dependence of the bifurcation: GEMM paths side by side, equal-rate test, pooling."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from relulab.experiments import bifurcation, gemm_paths, machine_dependence


def test_two_cells_use_the_exact_conditional_binomial_test():
    chi2, dof, p, test = machine_dependence.equal_rate_test([9, 30], [1e6, 1e6])
    assert dof == 1 and test == "exact conditional binomial"
    assert p == pytest.approx(stats.binomtest(9, 39, 0.5).pvalue)
    assert chi2 == pytest.approx((9 - 19.5) ** 2 / 19.5 * 2)
    assert p < 0.01


def test_counts_in_proportion_to_exposure_do_not_reject_equal_rates():
    _, dof, p, test = machine_dependence.equal_rate_test([10, 20, 40], [1e6, 2e6, 4e6])
    assert dof == 2 and test == "Pearson chi-square" and p == pytest.approx(1.0)
    _, _, p, _ = machine_dependence.equal_rate_test([40, 20, 10], [1e6, 2e6, 4e6])
    assert p < 1e-6


def test_nothing_to_test_without_counts_or_with_one_cell():
    assert machine_dependence.equal_rate_test([0, 0], [1e6, 1e6])[2] == 1.0
    assert math.isnan(machine_dependence.equal_rate_test([5], [1e6])[2])


def _cells(zeros, exposures, precision="float32"):
    rows = []
    for (width, depth), count, exposure in zip([(64, 3), (256, 1)], zeros, exposures, strict=True):
        rows.append(
            {
                "dataset": "d",
                "inputs": "standardised",
                "compare": "all",
                "device": "cpu",
                "precision": precision,
                "width": width,
                "depth": depth,
                "batch_size": 256,
                "inits": 10,
                "exact_zeros": count,
                "pre_activations_per_init": exposure,
                "cpu_model": "CPU",
                "env": "",
            }
        )
    return pd.DataFrame(rows)


def test_rates_pool_counts_and_carry_the_pooled_rate_to_the_papers_exposure():
    table = machine_dependence.rates(_cells([6, 14], [100_000_000, 100_000_000]))
    row = table.iloc[0]
    assert row["cells"] == 2 and row["architectures"] == "3x64, 1x256"
    assert row["pooled_rate"] == pytest.approx(20 / 2_000_000_000)
    assert row["rate_low"] < row["pooled_rate"] < row["rate_high"]
    assert row["paper_exposure"] == 60_000 * 256 * 3
    expected = 1 - np.exp(-row["pooled_rate"] * row["paper_exposure"])
    assert row["expected_fraction_at_paper"] == pytest.approx(expected)
    assert row["expected_fraction_low"] < expected < row["expected_fraction_high"]
    assert row["paper_fraction"] == 0.46
    assert "constant rate" in row["assumption"]
    assert row["p_value"] == pytest.approx(stats.binomtest(6, 20, 0.5).pvalue)
    assert row["gemm_path"] == "default" and row["cpu_model"] == "CPU"


def test_rates_are_per_precision():
    cells = pd.concat([_cells([1, 2], [1e6, 1e6]), _cells([50, 60], [1e6, 1e6], "float16")])
    table = machine_dependence.rates(cells)
    assert table["precision"].tolist() == ["float32", "float16"]
    assert table["exact_zeros"].tolist() == [3, 110]


def _inits(differ, precision="float32", width=8, depth=1, env=""):
    n = len(differ)
    return pd.DataFrame(
        {
            "dataset": "d",
            "inputs": "standardised",
            "compare": "all",
            "device": "cpu",
            "activation": "relu",
            "precision": precision,
            "width": width,
            "depth": depth,
            "batch_size": 4,
            "zero_grad": 1.0,
            "init": range(n),
            "examples": 100,
            "batches": 25,
            "pre_activations": 100 * width * depth,
            "differ": differ,
            "differing_batches": [int(d) for d in differ],
            "first_differing_batch": [3 if d else -1 for d in differ],
            "exact_zeros": [int(d) for d in differ],
            "live_exact_zeros": [int(d) for d in differ],
            "max_grad_diff_norm": [1e-8 if d else 0.0 for d in differ],
            "batches_with_both_passes": 1,
            "env": env,
        }
    )


def test_side_by_side_compares_the_same_initialisations_on_both_paths():
    default = pd.concat(
        [
            _inits([True, False, True, True, False, True]),  # 6 inits on the default path
            _inits([False, False], width=16),  # a cell the other path did not measure
        ]
    )
    other = _inits([False, True, True, False], env="MKL_CBWR=COMPATIBLE")  # its first 4
    table = machine_dependence.side_by_side(default, other, "mkl_cbwr_compatible")
    assert table["gemm_path"].tolist() == ["default", "mkl_cbwr_compatible"]
    assert table["inits"].tolist() == [4, 4]
    assert table["differ"].tolist() == [3, 2]
    assert table["differ_on_both"].tolist() == [1, 1]  # init 2 alone bifurcates on both
    assert table["env"].tolist() == ["", "MKL_CBWR=COMPATIBLE"]
    assert list(table.columns)[0] == "gemm_path"
    assert list(table.columns)[1:-1] == list(bifurcation.table(other).columns)


def test_side_by_side_without_another_path_is_the_default_cells():
    table = machine_dependence.side_by_side(_inits([True, False]), pd.DataFrame(), "other")
    assert table["gemm_path"].tolist() == ["default"]
    assert table["inits"].tolist() == [2]


def _settings(**other):
    return {
        "precisions": ["float64", "float32"],
        "widths": [64, 256],
        "depths": [1, 3],
        "architectures": [],
        "inits": 96,
        "inits_by_precision": {"float64": 32},
        "other_gemm_path": {
            "enabled": True,
            "name": "mkl_cbwr_compatible",
            "env": {"MKL_CBWR": "COMPATIBLE"},
            "precisions": ["float32", "float16"],
            "architectures": [{"width": 64, "depth": 3}, {"width": 128, "depth": 3}],
            "inits": 32,
            **other,
        },
    }


def test_the_other_path_measures_only_cells_the_study_measures():
    settings = _settings()
    assert gemm_paths.precisions(settings) == ["float32"]  # no float16 in the study
    chosen = gemm_paths.other_settings(settings)
    assert chosen["architectures"] == [{"width": 64, "depth": 3}]  # 128x3 is not measured
    assert bifurcation.inits_of(chosen, "float32") == 32
    assert gemm_paths.env(settings) == {"MKL_CBWR": "COMPATIBLE"}
    assert gemm_paths.name(settings) == "mkl_cbwr_compatible"


def test_the_other_path_takes_every_study_architecture_when_none_is_named():
    chosen = gemm_paths.other_settings(_settings(architectures=[], inits=500))
    assert len(chosen["architectures"]) == 4
    assert bifurcation.inits_of(chosen, "float32") == 96  # never more than the study's


def test_a_disabled_or_disjoint_other_path_measures_nothing():
    assert gemm_paths.precisions(_settings(enabled=False)) == []
    assert gemm_paths.precisions(_settings(architectures=[{"width": 5, "depth": 5}])) == []
