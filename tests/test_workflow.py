"""End to end: the smoke study through Snakemake, checked in its tables, figures and MLflow."""

import hashlib
import posixpath
import re
import shutil
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from helpers.workflow import (
    check_figures,
    check_mlflow_runs,
    check_point_json,
    check_tables,
    scratch_copy,
    snakemake,
    study_config,
)
from mlflow.tracking import MlflowClient

from relulab.study import config as cfg
from relulab.study import grid

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


# Commands that only look at a study (Snakemake's listings, lint, DAG, summary, report).
INSPECTIONS = [
    ["-n"],
    ["--summary"],
    ["--list-rules"],
    ["--dag"],
    ["--rulegraph"],
    ["--lint"],
    ["--list-changes", "params"],
    ["--report", "{report}"],
]


def tree_state(folder: Path) -> dict[str, tuple[str, int]]:
    """SHA-256 and modification time of every file under ``folder``."""
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_inspection_writes_nothing_even_without_a_store(smoke_study, tmp_path):
    """Parsing reads the config and the finished points only: with the MLflow store deleted,
    no listing, lint, DAG, summary or report makes it again or writes under results/."""
    workdir = tmp_path / "study"
    shutil.copytree(smoke_study, workdir, symlinks=True)
    (workdir / "results" / "mlflow.db").unlink()
    before = tree_state(workdir / "results")
    for inspection in INSPECTIONS:
        args = [arg.format(report=tmp_path / "report.zip") for arg in inspection]
        snakemake(workdir, "--cores", "1", "--configfile", "config/smoke.yaml", *args)
        assert tree_state(workdir / "results") == before, args
    assert (
        "rebuild_store"
        in snakemake(workdir, "--cores", "1", "--configfile", "config/smoke.yaml", "-n").stdout
    )


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
    for category in (
        "Findings",
        "Reference: Definitions",
        "Q1 ReLU'(0)",
        "Q2 Dead units",
        "Q3 Gradient flow",
        "Q3 Cost",
    ):
        assert category in report
    names = ("death_over_time.png", "gradient_by_depth.png", "cost.html", "revival.html")
    for name in (*names, "definitions.html"):
        assert name in report


def test_findings_link_to_the_items_of_the_zipped_report(smoke_study):
    """Every source the findings cite that is a report item opens that item from inside
    Snakemake's zipped report; the others (CSV files) are no report item."""
    snakemake(smoke_study, "--configfile", "config/smoke.yaml", "--report", "results/report.zip")
    with zipfile.ZipFile(smoke_study / "results/report.zip") as archive:
        names = set(archive.namelist())
        (inside,) = [n for n in names if n.endswith("/findings.html")]
        page = archive.read(inside).decode()
    links = re.findall(r'<a class="source" href="([^"]+)"(?: data-report-href="([^"]+)")?', page)
    targets = {target for _, target in links if target}
    assert len(targets) >= 5
    folder = PurePosixPath(inside).parent
    for source, target in links:
        assert (smoke_study / "results" / source).exists(), source  # from results/ as they are
        if source.endswith((".html", ".png")):
            resolved = posixpath.normpath(str(folder / target))
            assert resolved in names, (source, target)
        else:
            assert not target, source


def point_files_state(workdir) -> dict[str, tuple[bytes, int]]:
    """Bytes and modification time of every grid point's files."""
    runs = workdir / "results" / "runs"
    return {
        str(path.relative_to(runs)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(runs.glob("*/*"))
        if path.is_file()
    }


def test_changing_points_per_job_trains_nothing(smoke_study):
    for per_job in (1, 3, 50):
        result = snakemake(
            smoke_study,
            "--cores",
            "2",
            "--configfile",
            "config/smoke.yaml",
            "--config",
            f"training={{points_per_job: {per_job}}}",
            "-n",
        )
        out = result.stdout + result.stderr
        assert "rule train_" not in out, out[-2000:]
        assert "Nothing to be done" in out


def test_adding_a_learning_rate_trains_only_the_new_points(smoke_study):
    config = study_config(smoke_study)
    old = {point.id for point in grid.expand(config)}
    before = point_files_state(smoke_study)
    client = MlflowClient(f"sqlite:///{smoke_study}/results/mlflow.db")
    experiment = client.get_experiment_by_name(config["study"]).experiment_id
    runs_before = {r.info.run_id for r in client.search_runs([experiment], max_results=5000)}
    grown = ["--configfile", "config/smoke.yaml", "--config", "lr=[0.5,0.05]"]

    plan = snakemake(smoke_study, "--cores", "2", *grown, "-n")
    lines = (plan.stdout + plan.stderr).splitlines()
    outputs = [line for line in lines if line.strip().startswith("output:")]
    planned = set(re.findall(r"results/runs/([^/\s,]+)/point\.json", "\n".join(outputs)))
    new = {point.id for point in grid.expand(study_config(smoke_study) | {"lr": [0.5, 0.05]})}
    new -= old
    assert new and planned == new, (planned, new)

    snakemake(smoke_study, "--cores", "2", *grown)
    after = point_files_state(smoke_study)
    assert {key: after[key] for key in before} == before, "finished points untouched"
    assert {key.split("/")[0] for key in set(after) - set(before)} == new
    runs = client.search_runs([experiment], max_results=5000)
    added = [r for r in runs if r.info.run_id not in runs_before]
    seeds = len(cfg.seeds(config))
    assert sorted(r.data.tags["relulab.point"] for r in added) == sorted(
        [point for point in new for _ in range(seeds + 1)]
    ), "MLflow gains exactly the new points' runs (a parent and one per seed)"
