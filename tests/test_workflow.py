"""End to end: the smoke study through Snakemake, checked in its tables, figures and MLflow."""

import pytest
from workflow_helpers import (
    check_figures,
    check_mlflow_runs,
    check_point_json,
    check_tables,
    scratch_copy,
    snakemake,
    study_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    workdir = scratch_copy(tmp_path_factory.mktemp("smoke"))
    snakemake(workdir, "--cores", "2", "--configfile", "config/smoke.yaml")
    return workdir


def test_tables_have_one_row_per_grid_point(smoke_study):
    check_tables(smoke_study, study_config(smoke_study))


def test_figures_exist_as_png_and_svg(smoke_study):
    check_figures(smoke_study)


def test_mlflow_has_one_run_per_point_and_seed_with_every_epoch(smoke_study):
    uri = f"sqlite:///{smoke_study}/results/mlflow.db"
    check_mlflow_runs(uri, study_config(smoke_study))


def test_point_json_links_to_mlflow_runs(smoke_study):
    check_point_json(smoke_study, study_config(smoke_study))


def test_second_run_has_nothing_to_do(smoke_study):
    result = snakemake(smoke_study, "--cores", "2", "--configfile", "config/smoke.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_config_override_from_command_line(smoke_study):
    result = snakemake(
        smoke_study,
        "--cores",
        "2",
        "--configfile",
        "config/smoke.yaml",
        "--config",
        "lr=[0.05]",
        "-n",
    )
    out = result.stdout + result.stderr
    assert "relu_zg0_lr0.05_float32_d2_nobn" in out


def test_findings_and_html_report_group_every_output_by_question(smoke_study):
    findings = (smoke_study / "results/findings.md").read_text()
    for heading in ("## Q1.", "## Q2.", "## Q3."):
        assert heading in findings
    assert "tables/death.html" in findings and "figures/convergence.png" in findings
    snakemake(smoke_study, "--configfile", "config/smoke.yaml", "--report", "results/report.html")
    report = (smoke_study / "results/report.html").read_text()
    for category in ("Findings", "Q1 ReLU'(0)", "Q2 Dead units", "Q3 Gradient flow", "Q3 Cost"):
        assert category in report
    for name in ("death_over_time.png", "gradient_by_depth.png", "cost.html", "revival.html"):
        assert name in report
