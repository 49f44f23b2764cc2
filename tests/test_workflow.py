"""End to end: the smoke study through Snakemake, checked in its tables, figures and MLflow."""

import json

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from workflow_helpers import scratch_copy, snakemake

from relulab import config as cfg
from relulab import grid

pytestmark = pytest.mark.slow

FIGURES = ["dead_heatmap", "dead_over_epochs", "accuracy_over_epochs", "accuracy_vs_lr"]


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    workdir = scratch_copy(tmp_path_factory.mktemp("smoke"))
    snakemake(workdir, "--cores", "2", "--configfile", "config/smoke.yaml")
    return workdir


def smoke_config(workdir):
    return cfg.validate(yaml.safe_load((workdir / "config" / "smoke.yaml").read_text()))


def test_tables_have_one_row_per_grid_point(smoke_study):
    config = smoke_config(smoke_study)
    points = grid.expand(config)
    summary = pd.read_csv(smoke_study / "results/tables/summary.csv")
    assert sorted(summary.point) == sorted(p.id for p in points)
    for column in [
        "activation",
        "zero_grad",
        "lr",
        "seeds",
        "val_accuracy_mean",
        "val_accuracy_ci95",
        "dead_fraction_mean",
        "inactive_fraction_mean",
        "diverged_fraction",
    ]:
        assert column in summary.columns
    assert (summary.seeds == 2).all()
    assert summary.val_accuracy_mean.between(0, 1).all()
    assert (smoke_study / "results/tables/summary.md").read_text().startswith("| point")
    assert "<table" in (smoke_study / "results/tables/summary.html").read_text()


def test_figures_exist_as_png_and_svg(smoke_study):
    for name in FIGURES:
        png = smoke_study / "results/figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in (png.with_suffix(".svg")).read_text()[:2000]


def test_mlflow_has_one_run_per_point_and_seed_with_every_epoch(smoke_study):
    config = smoke_config(smoke_study)
    client = MlflowClient(f"sqlite:///{smoke_study}/results/mlflow.db")
    experiment = client.get_experiment_by_name(config["study"])
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    seeds = [r for r in runs if r.data.tags.get("relulab.role") == "seed"]
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("relulab.role") == "point"}
    points = grid.expand(config)
    assert len(parents) == len(points)
    assert len(seeds) == len(points) * 2
    keys = {(r.data.tags["relulab.point"], r.data.tags["relulab.seed"]) for r in seeds}
    assert len(keys) == len(seeds), "no duplicate runs"
    for run in seeds:
        assert run.data.tags["mlflow.parentRunId"] in parents
        assert run.data.tags["status"] in ("finished", "diverged")
        assert run.data.params["seed"] == run.data.tags["relulab.seed"]
        assert run.data.params["activation"] in config["activation"]
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        if run.data.tags["status"] == "finished":
            assert sorted(m.step for m in history) == [0, 1, 2]
        assert "layer1.dead_fraction" in run.data.metrics
    parent = next(iter(parents.values()))
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"epochs.csv", "layers.csv"} <= artifacts


def test_point_json_links_to_mlflow_runs(smoke_study):
    for point_json in (smoke_study / "results/runs").glob("*/point.json"):
        info = json.loads(point_json.read_text())
        assert set(info["mlflow"]["seed_run_ids"]) == {"0", "1"}
        assert set(info["seeds"]) == {"0", "1"}


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
