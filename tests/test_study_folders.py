"""One study, one place: each study works in studies/<study>/, and running another config
never rewrites a finished study's files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.workflow import check_mlflow_runs, check_tables, scratch_copy

from relulab.study import config as cfg
from relulab.study import paths

# A study smaller than the smoke study: one point, one seed, one epoch, nothing optional.
SMALL = {
    "study": "small",
    "dataset": "mnist1d",
    "activation": ["relu"],
    "zero_grad": [0.0],
    "lr": [0.5],
    "model": {"width": 16, "depth": 1},
    "training": {"optimizer": "sgd", "epochs": 1, "batch_size": 256, "seeds": 1},
    "bifurcation": {"enabled": False},
    "born_dead": {"enabled": False},
    "twins_control": {"enabled": False},
    "cost": {"sizes": [1000], "repeats": 3},
}


def run_study(project: Path, configfile: str) -> None:
    """``snakemake --cores 2 --configfile ...`` in the project folder, as README says it."""
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    command = [str(Path(sys.executable).parent / "snakemake"), "--cores", "2"]
    result = subprocess.run(
        [*command, "--configfile", configfile],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-6000:]


def digests(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the sha256 of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_study_folders_are_named_by_the_config():
    assert paths.study_dir({"study": "smoke"}, "/p") == Path("/p/studies/smoke")
    default = cfg.load_schema()["properties"]["study"]["default"]
    assert paths.study_dir({}) == paths.STUDIES / default
    # A name that is no folder's name is left to the config's validation to refuse.
    for bad in ("..", ".", "a/b", ""):
        assert paths.study_dir({"study": bad}, "/p") == Path("/p")
        with pytest.raises(cfg.ConfigError):
            cfg.validate({"study": bad})


@pytest.mark.slow
def test_a_study_run_after_another_leaves_the_first_ones_files_byte_identical(tmp_path):
    project = scratch_copy(tmp_path / "project")
    (project / "config" / "small.yaml").write_text(yaml.safe_dump(SMALL))
    run_study(project, "config/small.yaml")
    small = project / "studies" / "small"
    before = digests(small)
    assert "results/tables/summary.csv" in before and "results/mlflow.db" in before

    run_study(project, "config/smoke.yaml")

    assert digests(small) == before
    smoke = project / "studies" / "relulab-smoke"
    smoke_config = cfg.validate(yaml.safe_load((project / "config/smoke.yaml").read_text()))
    check_tables(smoke, smoke_config)
    check_mlflow_runs(f"sqlite:///{smoke}/results/mlflow.db", smoke_config)
    assert (smoke / "results" / "findings.md").is_file()
    # Nothing of either study is written beside the workflow.
    assert not (project / "results").exists()
