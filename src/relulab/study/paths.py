"""Where a study lives, and every path it writes under ``results/``, spelled once.

Each study works in its own folder, ``studies/<study>/`` under the project root (the folder of
the Snakefile), named by the config's ``study`` key: its ``results/`` (tables, figures,
findings, logs, checkpoints, the MLflow store) and Snakemake's own records (``.snakemake/``)
live there, so running one config never rewrites another study's files. The Snakefile makes
that folder Snakemake's working directory (its ``workdir:``); ``snakemake --directory DIR``
chooses another folder instead. The paths below are relative to the study's folder. Rules,
scripts, findings and tests take them from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

# Studies' folders, relative to the project root.
STUDIES = Path("studies")
# A study's name is a folder's name (the schema's pattern for ``study``, without "." and "..").
_STUDY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

RESULTS = Path("results")
RUNS = RESULTS / "runs"
TABLES = RESULTS / "tables"
FIGURES = RESULTS / "figures"
LOGS = RESULTS / "logs"
DATA = RESULTS / "data"
MLFLOW = RESULTS / "mlflow"
FINDINGS = RESULTS / "findings.md"
FINDINGS_HTML = RESULTS / "findings.html"
DEFINITIONS = RESULTS / "definitions.html"
REPORT = RESULTS / "report.zip"
EXPERIMENT = MLFLOW / "experiment.json"  # the store and the study's experiment are made
STUDY_RUN = MLFLOW / "study.json"  # the study's own run holds its results
REBUILDS = MLFLOW / "rebuilds"  # one report per rebuild of a lost store
MLFLOW_DB = RESULTS / "mlflow.db"
ARTIFACTS = RESULTS / "mlartifacts"
CONTROLS = RESULTS / "controls"  # Q1's 1-ulp controls, one folder per controlled point
BIFURCATION = RESULTS / "bifurcation"  # the bifurcation's cells, per precision (and GEMM path)

# The files a training job writes for each grid point, in the order it writes them:
# point.json last, so that its presence means the point is finished.
POINT_FILES = ("epochs.csv", "layers.csv", "point.json")


def run_dir(point_id: str) -> Path:
    """``results/runs/<point>/``: a grid point's outputs."""
    return RUNS / point_id


# What a training job keeps in a point's folder while it trains, besides its outputs: the last
# epoch's checkpoint (removed once the point is finished; a rerun resumes from it) and the lock
# that lets one process at a time train the point. Not Snakemake outputs, which Snakemake
# deletes when a job fails: the checkpoint must survive a failed or interrupted job.
CHECKPOINTS = "checkpoints"
TRAINING_LOCK = "training.lock"


def checkpoint(point_dir: str | Path) -> Path:
    """The checkpoint of the last finished epoch of the point trained in ``point_dir``."""
    return Path(point_dir) / CHECKPOINTS / "last.ckpt"


def training_lock(point_dir: str | Path) -> Path:
    return Path(point_dir) / TRAINING_LOCK


def point_files(point_id: str) -> list[str]:
    """The outputs of one grid point, as strings (Snakemake's outputs)."""
    return [str(run_dir(point_id) / name) for name in POINT_FILES]


def point_summary(point_id: str) -> Path:
    return run_dir(point_id) / "point.json"


def table(name: str, ext: str = "csv") -> Path:
    return TABLES / f"{name}.{ext}"


def figure(name: str, ext: str = "png") -> Path:
    return FIGURES / f"{name}.{ext}"


def dataset(name: str) -> Path:
    return DATA / f"{name}.npz"


def log(name: str) -> Path:
    """``results/logs/<name>.log``: a rule's log (``name`` may hold folders and wildcards)."""
    return LOGS / f"{name}.log"


def train_log(job: str) -> Path:
    return log(f"train/{job}")


def rebuild_report(number: int) -> Path:
    return REBUILDS / f"{number}.json"


def study_name(config: Mapping) -> str:
    """The config's ``study``, or the schema's default when the config leaves it out."""
    name = config.get("study")
    if name is None:
        from relulab.study import config as cfg

        name = cfg.load_schema()["properties"]["study"]["default"]
    return str(name)


def study_dir(config: Mapping, root: str | Path = ".") -> Path:
    """``studies/<study>/`` under ``root``: the folder the study of ``config`` works in.

    A name that is no folder's name gives ``root`` itself, so that the config's validation,
    which comes next, reports the mistake before anything is written.
    """
    name = study_name(config)
    return Path(root) / STUDIES / name if _STUDY_NAME.match(name) else Path(root)
