"""Running the real workflow in a scratch copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scratch_copy(target: Path) -> Path:
    """The Snakefile, workflow/ and config/ copied into ``target``, as a user's clone."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", target / "Snakefile")
    shutil.copytree(ROOT / "workflow", target / "workflow", dirs_exist_ok=True)
    shutil.copytree(ROOT / "config", target / "config", dirs_exist_ok=True)
    return target


def snakemake(workdir: Path, *args: str, env: dict | None = None, check: bool = True):
    """Run ``snakemake`` from this interpreter's environment in ``workdir``."""
    command = [str(Path(sys.executable).parent / "snakemake"), *args]
    environment = {**os.environ, **(env or {})}
    environment.pop("MLFLOW_TRACKING_URI", None) if env is None else None
    result = subprocess.run(
        command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=1800
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    return result
