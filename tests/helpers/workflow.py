"""Running the real workflow in a scratch copy of the repository, and checking what it wrote."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from relulab.study import config as cfg
from relulab.study import grid, paths

ROOT = Path(__file__).resolve().parents[2]


def scratch_copy(target: Path) -> Path:
    """The Snakefile, workflow/, config/ and docs/ copied into ``target``, as a user's clone."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", target / "Snakefile")
    for folder in ("workflow", "config", "docs"):
        shutil.copytree(ROOT / folder, target / folder, dirs_exist_ok=True)
    return target


def in_place(workdir: Path) -> list[str]:
    """Snakemake's option that makes ``workdir`` the study's folder."""
    return ["--directory", str(workdir)]


def snakemake(
    workdir: Path,
    *args: str,
    env: dict | None = None,
    check: bool = True,
    timeout: float = 1800,
):
    """Run ``snakemake`` from this interpreter's environment in ``workdir``, which is also the
    study's folder (``--directory``): what it writes is under ``workdir/results``, not under
    ``studies/<study>/`` as in a project run without ``--directory``."""
    command = [str(Path(sys.executable).parent / "snakemake"), *in_place(workdir), *args]
    environment = {**os.environ, **(env or {})}
    environment.pop("MLFLOW_TRACKING_URI", None) if env is None else None
    result = subprocess.run(
        command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        shown = " ".join(args) if len(args) < 12 else f"{' '.join(args[:3])} ... ({len(args)} args)"
        raise AssertionError(
            f"snakemake {shown} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}{failed_job_logs(workdir, result)}"
        )
    return result


def failed_job_logs(workdir: Path, result: subprocess.CompletedProcess) -> str:
    """The end of each log file Snakemake names for a failed job ("log: X (check log file(s)")."""
    shown = []
    for match in re.finditer(r"log: (\S+) \(check log file", result.stdout + result.stderr):
        log = workdir / match.group(1)
        if log.is_file():
            shown.append(f"\n--- {match.group(1)} (end) ---\n{log.read_text()[-4000:]}")
    return "".join(shown)


FIGURES = ["dead_heatmap", "dead_over_epochs", "accuracy_over_epochs", "accuracy_vs_lr"]


def study_config(workdir: Path, configfile: str = "config/smoke.yaml") -> dict:
    """The validated config a study in ``workdir`` ran with: a ``--configfile`` replaces
    config/config.yaml (see the Snakefile), so it is ``configfile`` alone."""
    return cfg.validate(yaml.safe_load((workdir / configfile).read_text()))


def check_tables(workdir: Path, config: dict) -> None:
    """The summary table has one row per grid point, in CSV, Markdown and HTML."""
    summary = pd.read_csv(workdir / "results/tables/summary.csv")
    assert sorted(summary.point) == sorted(p.id for p in grid.expand(config))
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
    assert (summary.seeds == len(cfg.seeds(config))).all()
    assert summary.val_accuracy_mean.between(0, 1).all()
    assert (workdir / "results/tables/summary.md").read_text().startswith("| point")
    assert "<table" in (workdir / "results/tables/summary.html").read_text()


def check_figures(workdir: Path) -> None:
    """Every figure exists as a PNG and an SVG."""
    for name in FIGURES:
        png = workdir / "results/figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in (png.with_suffix(".svg")).read_text()[:2000]


def check_mlflow_runs(tracking_uri: str, config: dict) -> None:
    """One parent run per grid point, one child run per seed with every epoch, no duplicates."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(config["study"])
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    seed_runs = [r for r in runs if r.data.tags.get("relulab.role") == "seed"]
    parents = {r.info.run_id: r for r in runs if r.data.tags.get("relulab.role") == "point"}
    points = grid.expand(config)
    seeds = cfg.seeds(config)
    assert len(parents) == len(points)
    assert len(seed_runs) == len(points) * len(seeds)
    keys = {(r.data.tags["relulab.point"], r.data.tags["relulab.seed"]) for r in seed_runs}
    assert len(keys) == len(seed_runs), "no duplicate runs"
    epochs = list(range(config["training"]["epochs"] + 1))
    for run in seed_runs:
        assert run.data.tags["mlflow.parentRunId"] in parents
        assert run.data.tags["status"] in ("finished", "diverged")
        assert run.data.params["seed"] == run.data.tags["relulab.seed"]
        assert run.data.params["activation"] in config["activation"]
        history = client.get_metric_history(run.info.run_id, "all/val_accuracy")
        if run.data.tags["status"] == "finished":
            assert sorted(m.step for m in history) == epochs
        assert "layer1/dead_fraction" in run.data.metrics
    parent = next(iter(parents.values()))
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"epochs.csv", "layers.csv"} <= artifacts


def training_targets(config: dict) -> list[str]:
    """The grid points' files: once they exist, every grid point of ``config`` is trained."""
    return [path for point in grid.expand(config) for path in paths.point_files(point.id)]


def check_point_json(workdir: Path, config: dict) -> None:
    """Each grid point's point.json names every seed and its MLflow run, and its fingerprint
    says it is finished with the study's settings."""
    seeds = {str(seed) for seed in cfg.seeds(config)}
    for point in grid.expand(config):
        assert grid.is_finished(point, config, workdir / paths.run_dir(point.id)), point.id
        info = json.loads((workdir / "results/runs" / point.id / "point.json").read_text())
        assert set(info["mlflow"]["seed_run_ids"]) == seeds
        assert set(info["seeds"]) == seeds


def check_study(workdir: Path, config: dict) -> None:
    """Everything a finished study must have written, MLflow in the default store."""
    check_tables(workdir, config)
    check_figures(workdir)
    check_mlflow_runs(f"sqlite:///{workdir}/results/mlflow.db", config)
    check_point_json(workdir, config)
