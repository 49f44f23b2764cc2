"""What a run was made with: library versions, the code that ran and the device.

The code is named from its own location, never from the working directory: a study run with
Snakemake's ``--directory`` inside another repository (or outside any) still names relulab's
checkout. A checkout gives its commit and whether its tracked files differ from it; an install
that is no checkout gives its package version. Either way ``code_sha256`` hashes the package's
own source, so a change shows even in a dirty tree, and a checkpoint made by other code is
never resumed by this code (``relulab.train.job``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

import torch

import relulab

PACKAGES = ("torch", "lightning", "mlflow", "snakemake")
# The package's source files (what ``code_sha256`` hashes): Python and the compiled operators.
SOURCE_SUFFIXES = (".py", ".cpp", ".cu", ".h")
# ``git_commit`` where the package is no git checkout (an installed package).
NOT_A_CHECKOUT = "none"


def package_dir() -> Path:
    """The folder of the relulab package that is running."""
    return Path(relulab.__file__).resolve().parent


def _git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def checkout(code_dir: str | Path | None = None) -> dict[str, str] | None:
    """The commit of the git checkout that tracks ``code_dir`` (default: the package) and
    whether its tracked files differ from that commit; None where git does not track it.

    A package installed into a virtual environment that sits inside some repository is not
    tracked by it: such a repository's commit is not the code's.
    """
    where = Path(code_dir) if code_dir is not None else package_dir()
    try:
        top = Path(_git(where, "rev-parse", "--show-toplevel"))
        tracked = _git(where, "ls-files", "--", ".")
        if not tracked:
            return None
        commit = _git(where, "rev-parse", "HEAD")
        dirty = _git(top, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": "true" if dirty else "false"}


def git_commit(code_dir: str | Path | None = None) -> str:
    """The commit of the code's checkout (see ``checkout``), or ``NOT_A_CHECKOUT``.

    A dirty tree still names its commit: ``provenance``'s ``git_dirty`` and ``code_sha256``
    say whether and how the code differs from it.
    """
    found = checkout(code_dir)
    return found["commit"] if found else NOT_A_CHECKOUT


def source_sha256(code_dir: str | Path | None = None) -> str:
    """A short sha256 of the package's source files (relative paths and bytes, in order)."""
    root = Path(code_dir) if code_dir is not None else package_dir()
    digest = hashlib.sha256()
    files = sorted(
        path
        for path in root.rglob("*")
        if path.suffix in SOURCE_SUFFIXES and "__pycache__" not in path.parts and path.is_file()
    )
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def _package_source_sha256() -> str:
    return source_sha256()


def code_version() -> str:
    """The running package's ``source_sha256`` (computed once per process)."""
    return _package_source_sha256()


def relulab_version() -> str:
    try:
        return importlib.metadata.version("relulab")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def code(code_dir: str | Path | None = None) -> dict[str, str]:
    """The code that runs: relulab's version, its checkout's commit and dirty flag (or
    ``NOT_A_CHECKOUT``/``unknown``), and the hash of its source (``code_sha256``)."""
    found = checkout(code_dir)
    return {
        "relulab": relulab_version(),
        "git_commit": found["commit"] if found else NOT_A_CHECKOUT,
        "git_dirty": found["dirty"] if found else "unknown",
        "code_sha256": code_version() if code_dir is None else source_sha256(code_dir),
    }


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def versions() -> dict[str, str]:
    """The versions of Python and of the libraries that compute and record (``PACKAGES``)."""
    info = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "absent"
    return info


def provenance(device: torch.device | str, code_dir: str | Path | None = None) -> dict[str, str]:
    """Python and library versions, the code (``code``) and the device's name."""
    return {**versions(), **code(code_dir), "device": device_name(device)}


def config_sha256(config: dict) -> str:
    """A short sha256 of a (validated) configuration, keys in sorted order."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tables_provenance(config: dict) -> dict[str, str]:
    """What the tables' sidecar (``results/tables/provenance.json``) records: the code that
    aggregated them, library versions and the hash of the study's configuration."""
    return {**code(), **versions(), "config_sha256": config_sha256(config)}
