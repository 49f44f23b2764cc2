"""The scripts of bin/ and .ci/: the modules they run exist, and bin/setup's decisions.

bin/setup is a bash file whose functions run only when it is executed; sourcing it defines them,
so each decision is tested on its own, in temporary folders, without installing anything.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "bin" / "setup"
# `python -m module`, `"$python" -m module`, `.venv/bin/python3.11 -m module`, `$PY -m module`.
RUN_MODULE = re.compile(r"""(?:python[\d.]*|\$\{?PY\w*\}?)["']?\s+-m\s+([A-Za-z_][\w.]*)""")


def scripts() -> list[Path]:
    found = [p for folder in ("bin", ".ci") for p in sorted((ROOT / folder).iterdir())]
    return [p for p in found if p.is_file() and p.read_text().startswith("#!")]


def modules_run(text: str) -> set[str]:
    return set(RUN_MODULE.findall(text))


def test_the_pattern_finds_modules_run_as_scripts():
    text = '.venv/bin/python -m relulab.nn.native || true\n"$python" -m venv .venv\nls -m x\n'
    assert modules_run(text) == {"relulab.nn.native", "venv"}


def test_every_module_bin_and_ci_run_with_python_m_exists():
    checked = {}
    for script in scripts():
        for module in modules_run(script.read_text()):
            checked[module] = script.name
    assert "relulab.nn.native" in checked, "bin/setup builds the compiled operators"
    missing = {m: s for m, s in checked.items() if importlib.util.find_spec(m) is None}
    assert not missing, f"modules run with python -m that do not exist: {missing}"


def bash(statement: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``statement`` in bash after sourcing bin/setup (which defines its functions only)."""
    return subprocess.run(
        ["bash", "-c", f'source "{SETUP}"; {statement}'],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def fake_python(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(0o755)
    return path


def test_sourcing_setup_runs_nothing(tmp_path):
    result = bash("echo sourced", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "sourced\n"
    assert list(tmp_path.iterdir()) == []


def test_a_missing_venv_is_created(tmp_path):
    assert bash(f'venv_action "{tmp_path}/.venv" "{sys.executable}"').stdout == "create\n"


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtual environment made by this test's interpreter (no pip: under a second)."""
    path = tmp_path_factory.mktemp("venv") / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


def test_a_venv_made_by_python_is_kept(venv):
    assert bash(f'venv_action "{venv}" "{sys.executable}"').stdout == "keep\n"


def test_a_venv_made_by_another_python_is_rebuilt_saying_by_which(venv, tmp_path):
    other = fake_python(tmp_path / "python3.99", 'echo "CPython 3.99.0 /opt/python3.99"')
    result = bash(f'venv_action "{venv}" "{other}"')
    assert result.stdout.startswith("rebuild: it was made by CPython ")
    assert "PYTHON is CPython 3.99.0 /opt/python3.99" in result.stdout


def test_a_venv_whose_python_does_not_run_is_rebuilt(tmp_path):
    fake_python(tmp_path / ".venv" / "bin" / "python", "exit 127")
    result = bash(f'venv_action "{tmp_path}/.venv" "{sys.executable}"')
    assert result.stdout == f"rebuild: {tmp_path}/.venv/bin/python does not run\n"


def test_the_identity_names_version_and_installation(venv):
    result = bash(f'interpreter_identity "{venv}/bin/python"')
    implementation, version, prefix = result.stdout.split(maxsplit=2)
    assert version == ".".join(map(str, sys.version_info[:3]))
    assert Path(prefix.strip()) == Path(sys.base_prefix).resolve()


# A stand-in interpreter: it answers setup's questions as CPython 3.99.0, makes a "venv" that is a
# copy of itself, and records every -m call in calls.log beside the repository.
STAND_IN = r"""#!/usr/bin/env bash
case "$1" in
    -c) case "$2" in *version_info*) exit 0 ;; *) echo "CPython 3.99.0 /opt/python3.99" ;; esac ;;
    -m) echo "$*" >>"$CALLS"
        if [ "$2" = venv ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi
        if [ "$2" = relulab.nn.native ]; then echo "relulab: operators ready"; fi ;;
esac
"""


def setup_copy(tmp_path: Path) -> tuple[Path, dict]:
    """bin/setup with constraints.txt and pyproject.toml in a scratch repository, run with the
    stand-in as PYTHON."""
    repo = tmp_path / "repo"
    (repo / "bin").mkdir(parents=True)
    for name in ("bin/setup", "constraints.txt", "pyproject.toml"):
        (repo / name).write_bytes((ROOT / name).read_bytes())
    (repo / "bin/setup").chmod(0o755)
    python = fake_python(tmp_path / "python3.99", STAND_IN.split("\n", 1)[1])
    return repo, {"PATH": "/usr/bin:/bin", "PYTHON": str(python), "CALLS": str(tmp_path / "calls")}


def run_setup(repo: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(repo / "bin/setup")], env=env, capture_output=True, text=True, timeout=60
    )


def test_setup_rebuilds_a_venv_of_another_python_then_keeps_its_own(tmp_path):
    repo, env = setup_copy(tmp_path)
    old = fake_python(repo / ".venv/bin/python", 'echo "CPython 3.11.0 /opt/python3.11"')
    (repo / ".venv/.relulab-installed").touch()
    first = run_setup(repo, env)
    assert first.returncode == 0, first.stderr
    assert first.stderr == (
        "bin/setup: rebuilding .venv (it was made by CPython 3.11.0 /opt/python3.11, "
        "PYTHON is CPython 3.99.0 /opt/python3.99)\n"
    )
    assert "3.99.0" in old.read_text(), "the venv's interpreter is the stand-in's copy"
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "-m venv .venv"
    assert "-m pip install --quiet -c constraints.txt pip" in calls
    assert calls[-1] == "-m relulab.nn.native"
    assert first.stdout == "relulab: operators ready\n"
    second = run_setup(repo, env)
    assert second.returncode == 0
    assert second.stderr == ""
    assert (tmp_path / "calls").read_text().splitlines()[len(calls) :] == ["-m relulab.nn.native"]


def native_run(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    """bin/setup's native step in ``tmp_path`` with a stand-in .venv/bin/python."""
    fake_python(tmp_path / ".venv" / "bin" / "python", body)
    return bash("set -euo pipefail; build_native; echo setup-went-on", cwd=tmp_path)


def test_a_native_build_that_fails_gives_one_warning_with_its_reason(tmp_path):
    result = native_run(
        tmp_path,
        "echo 'relulab: compiled zero-gradient operators unavailable: "
        "RuntimeError: Ninja is required to load C++ extensions' >&2\n"
        "echo 'relulab: the Python implementation will be used' >&2\nexit 1",
    )
    assert result.returncode == 0
    assert result.stdout == "setup-went-on\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "compiled operators were not built (RuntimeError: Ninja is required" in lines[0]
    assert "Python implementation" in lines[0]
    assert ".venv/relulab-native.log" in lines[0]


def test_a_native_module_that_is_missing_is_reported_too(tmp_path):
    result = native_run(tmp_path, "echo 'python: No module named relulab.native' >&2; exit 1")
    assert result.returncode == 0
    assert "(python: No module named relulab.native)" in result.stderr


def test_a_native_build_that_dies_silently_gives_its_exit_status(tmp_path):
    result = native_run(tmp_path, "exit 143")
    assert result.returncode == 0
    assert "(it exited with status 143 and printed nothing)" in result.stderr


def test_a_native_build_that_succeeds_prints_its_last_line(tmp_path):
    result = native_run(tmp_path, "echo building; echo 'relulab: operators ready in /x'")
    assert result.stdout == "relulab: operators ready in /x\nsetup-went-on\n"
    assert result.stderr == ""


def test_the_native_module_says_why_it_does_not_build(monkeypatch, capsys):
    """The reason bin/setup shows comes from this message."""
    from relulab.nn import native

    monkeypatch.setenv(native.DISABLE, "0")
    assert native.main() == 1
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("relulab: compiled zero-gradient operators unavailable: turned off")


def test_pip_is_pinned_like_everything_else():
    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text().split()
        if "==" in line
    )
    assert re.fullmatch(r"\d+(\.\d+)+", pins.get("pip", "")), "constraints.txt pins pip"
    text = SETUP.read_text()
    assert "--upgrade pip" not in text
    assert "-c constraints.txt pip" in text
