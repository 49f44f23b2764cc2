"""Parsing the workflow: Snakemake's undocumented settings read through one module, checked
against the pinned Snakemake, and nothing heavy imported."""

import json
import subprocess
import sys

from helpers.workflow import scratch_copy, snakemake

SNAKEFILE = """
import json
from relulab.study import snakemake_settings as settings

if not settings.configfiles_given(workflow):

    configfile: "default.yaml"


print("SETTINGS " + json.dumps({
    "given": settings.configfiles_given(workflow),
    "main": settings.main_process(workflow),
    "command_line": settings.command_line_config(workflow),
    "dry_run": settings.dry_run(workflow),
    "resources": settings.resource_overrides(workflow, "work"),
    "config": dict(config),
}))


rule work:
    output:
        "out.txt",
    shell:
        "touch {output}"
"""


def settings_of(workdir, *args) -> dict:
    result = snakemake(workdir, "--cores", "1", *args)
    line = next(x for x in result.stdout.splitlines() if x.startswith("SETTINGS "))
    return json.loads(line.removeprefix("SETTINGS "))


def test_snakemake_settings_are_read_from_the_pinned_snakemake(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "default.yaml").write_text("study: default\n")
    (tmp_path / "other.yaml").write_text("study: other\n")
    plain = settings_of(tmp_path, "-n")
    assert plain == {
        "given": False,
        "main": True,
        "command_line": {},
        "dry_run": True,
        "resources": {},
        "config": {"study": "default"},
    }
    given = settings_of(
        tmp_path,
        "--configfile",
        "other.yaml",
        "--config",
        "epochs=3",
        "--set-resources",
        "work:mem_mb=7",
    )
    assert given["given"] is True and given["dry_run"] is False
    assert given["config"] == {"study": "other", "epochs": 3}
    assert given["command_line"] == {"epochs": 3}
    assert given["resources"] == {"mem_mb": 7}
    assert (tmp_path / "out.txt").exists()


def test_parsing_the_workflow_imports_neither_torch_nor_mlflow():
    """What common.smk imports (the config, grid, paths, store and data-file checks)."""
    code = (
        "import sys\n"
        "from relulab.study import config, grid, paths, snakemake_settings\n"
        "from relulab.data import vision\n"
        "from relulab.train.store import needs_rebuild\n"
        "from relulab.train.tracking_study import tracking_uri\n"
        "import relulab.cli\n"
        "print(sorted({'torch', 'mlflow', 'pandas', 'lightning'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_parsing_the_workflow_never_imports_torch(tmp_path):
    """The whole workflow (every rule file) parses without torch or MLflow: a listing of the
    smoke study's rules, with Python's import log."""
    workdir = scratch_copy(tmp_path)
    command = [
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "snakemake",
        "--list-rules",
        "--configfile",
        "config/smoke.yaml",
    ]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "snakemake" in imported and "relulab.study.grid" in imported
    assert not {"torch", "mlflow", "lightning"} & imported
