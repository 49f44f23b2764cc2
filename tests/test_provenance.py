"""A run's provenance: library versions, the code that ran (named from the code's own location,
never the working directory) and the device."""

import importlib.metadata
import platform
import re
import subprocess

from relulab.train import provenance as prov
from relulab.train.provenance import git_commit, provenance


def git(where, *args):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=where,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def repository(path, files: dict[str, str]) -> str:
    """A git repository at ``path`` with ``files`` committed; its commit."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", *files)
    git(path, "commit", "-q", "-m", "code")
    return git(path, "rev-parse", "HEAD")


def test_a_checkout_names_its_commit_dirty_or_not_and_its_source_hash_sees_changes(tmp_path):
    head = repository(tmp_path / "code", {"pkg/code.py": "x = 1\n"})
    pkg = tmp_path / "code" / "pkg"
    clean = prov.code(pkg)
    assert clean["git_commit"] == head
    assert clean["git_dirty"] == "false"
    (tmp_path / "code" / "notes.txt").write_text("untracked files do not change the code\n")
    assert prov.code(pkg) == clean
    (pkg / "code.py").write_text("x = 2\n")
    dirty = prov.code(pkg)
    assert dirty["git_commit"] == head  # the commit the changes are against
    assert dirty["git_dirty"] == "true"
    assert dirty["code_sha256"] != clean["code_sha256"]


def test_no_repository_and_an_untracked_install_are_no_checkout(tmp_path):
    assert git_commit(tmp_path) == prov.NOT_A_CHECKOUT
    # A virtual environment inside some repository: that repository does not track the package.
    repository(tmp_path / "project", {".gitignore": ".venv/\n"})
    installed = tmp_path / "project" / ".venv" / "site-packages" / "pkg"
    installed.mkdir(parents=True)
    (installed / "code.py").write_text("x = 1\n")
    assert git_commit(installed) == prov.NOT_A_CHECKOUT
    assert prov.code(installed)["git_dirty"] == "unknown"


def test_the_commit_is_relulabs_inside_another_repository_and_outside_any(tmp_path, monkeypatch):
    """Snakemake's working directory (``--directory``) is no guide to the code that runs."""
    own = git(prov.package_dir(), "rev-parse", "HEAD")
    other = repository(tmp_path / "study", {"Snakefile": "# a study of its own\n"})
    assert other != own
    monkeypatch.chdir(tmp_path / "study")
    assert provenance("cpu")["git_commit"] == own
    (tmp_path / "nowhere").mkdir()
    monkeypatch.chdir(tmp_path / "nowhere")
    info = provenance("cpu")
    assert info["git_commit"] == own
    assert re.fullmatch(r"[0-9a-f]{40}", info["git_commit"])
    assert info["git_dirty"] in ("true", "false")


def test_provenance_names_versions_code_and_device(tmp_path):
    repository(tmp_path / "code", {"pkg/code.py": "x = 1\n"})
    info = provenance("cpu", code_dir=tmp_path / "code" / "pkg")
    assert info["python"] == platform.python_version()
    for package in ("torch", "lightning", "mlflow", "snakemake"):
        assert info[package] == importlib.metadata.version(package)
    assert info["relulab"] == importlib.metadata.version("relulab")
    assert info["code_sha256"] == prov.source_sha256(tmp_path / "code" / "pkg")
    assert info["device"].startswith("cpu")
    assert provenance("cpu")["code_sha256"] == prov.code_version()
