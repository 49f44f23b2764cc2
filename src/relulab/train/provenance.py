"""What a run was made with: library versions, the code's git commit and the device."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

import torch

PACKAGES = ("torch", "lightning", "mlflow", "snakemake")


def git_commit(where: str | Path = ".") -> str:
    """The commit of the code, or ``uncommitted`` when the tree has changes or no git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"
    return "uncommitted" if dirty or not commit else commit


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def provenance(device: torch.device | str, code_dir: str | Path = ".") -> dict[str, str]:
    info = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "absent"
    info["git_commit"] = git_commit(code_dir)
    info["device"] = device_name(device)
    return info
