"""The machine-dependence and step-cost rules through Snakemake, on the smoke study."""

import pandas as pd
import pytest
from helpers.workflow import scratch_copy, snakemake

from relulab.experiments import bifurcation, cost_step, machine

pytestmark = pytest.mark.slow

TARGETS = [
    "results/tables/bifurcation.csv",
    "results/tables/bifurcation_machine.csv",
    "results/tables/bifurcation_rates.csv",
    "results/tables/cost_step.csv",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    workdir = scratch_copy(tmp_path_factory.mktemp("machine"))
    snakemake(workdir, "--cores", "2", *TARGETS, "--configfile", "config/smoke.yaml")
    return workdir / "results" / "tables"


def test_the_other_gemm_path_runs_with_its_environment_set_before_torch_loads(smoke):
    table = pd.read_csv(smoke / "bifurcation_machine.csv", keep_default_na=False)
    assert set(table["gemm_path"]) == {"default", "mkl_cbwr_compatible"}
    other = table[table["gemm_path"] == "mkl_cbwr_compatible"]
    assert all("MKL_CBWR=COMPATIBLE" in env.split(";") for env in other["env"])
    default = table[table["gemm_path"] == "default"]
    assert not any("MKL_CBWR" in env for env in default["env"])
    assert (table["inits"] == 4).all()


def test_bifurcation_cells_keep_their_columns_and_add_the_machine_last(smoke):
    columns = list(pd.read_csv(smoke / "bifurcation.csv").columns)
    assert columns[-len(machine.COLUMNS) :] == machine.COLUMNS
    inits = pd.read_csv(smoke / "bifurcation_inits.csv")
    assert list(inits.columns) == bifurcation.INIT_COLUMNS


def test_rates_and_step_cost_tables_have_their_columns(smoke):
    rates = pd.read_csv(smoke / "bifurcation_rates.csv")
    for column in ["precision", "cells", "chi2", "p_value", "pooled_rate", "rate_low"]:
        assert column in rates
    for column in ["rate_high", "paper_exposure", "expected_fraction_at_paper", "assumption"]:
        assert column in rates
    steps = pd.read_csv(smoke / "cost_step.csv", keep_default_na=False)
    assert list(steps.columns) == cost_step.COLUMNS
    assert set(steps["optimizer"]) == {"sgd"}
    assert (steps["batch_size"] == 128).all() and (steps["width"] == 32).all()
