"""A run's provenance: library versions, the code's commit (or "uncommitted") and the device."""

import importlib.metadata
import platform
import subprocess

from relulab.train.provenance import git_commit, provenance


def git(where, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=where,
        check=True,
        capture_output=True,
    )


def test_clean_checkout_gives_its_commit_and_changes_give_uncommitted(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "code.py")
    git(tmp_path, "commit", "-q", "-m", "code")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "notes.txt").write_text("untracked files do not change the code\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == "uncommitted"


def test_no_repository_gives_uncommitted(tmp_path):
    assert git_commit(tmp_path) == "uncommitted"


def test_provenance_names_versions_commit_and_device(tmp_path):
    info = provenance("cpu", code_dir=tmp_path)
    assert info["python"] == platform.python_version()
    for package in ("torch", "lightning", "mlflow", "snakemake"):
        assert info[package] == importlib.metadata.version(package)
    assert info["git_commit"] == "uncommitted"
    assert info["device"].startswith("cpu")
