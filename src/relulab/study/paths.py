"""Every path a study writes under ``results/``, spelled once.

Paths are relative to the study's working directory (where Snakemake runs). Rules, scripts,
findings and tests take them from here.
"""

from __future__ import annotations

from pathlib import Path

RESULTS = Path("results")
RUNS = RESULTS / "runs"
TABLES = RESULTS / "tables"
FIGURES = RESULTS / "figures"
LOGS = RESULTS / "logs"
DATA = RESULTS / "data"
MLFLOW = RESULTS / "mlflow"
FINDINGS = RESULTS / "findings.md"
REPORT = RESULTS / "report.zip"
EXPERIMENT = MLFLOW / "experiment.json"
MLFLOW_DB = RESULTS / "mlflow.db"
ARTIFACTS = RESULTS / "mlartifacts"

# The files a training job writes for each grid point, in the order it writes them:
# point.json last, so that its presence means the point is finished.
POINT_FILES = ("epochs.csv", "layers.csv", "point.json")


def run_dir(point_id: str) -> Path:
    """``results/runs/<point>/``: a grid point's outputs."""
    return RUNS / point_id


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


def train_log(job: str) -> Path:
    return LOGS / "train" / f"{job}.log"
