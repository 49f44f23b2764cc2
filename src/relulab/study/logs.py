"""Logging for pipeline steps: everything a step prints goes to its Snakemake log file."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path


def to_file(path: str | Path) -> None:
    """Send stdout, stderr, warnings and ``logging`` of this process to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    sys.stdout = sys.stderr = stream
    logging.basicConfig(
        stream=stream,
        level=logging.INFO,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", message=".*srun.*command is available.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
