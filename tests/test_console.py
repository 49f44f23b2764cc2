"""Ctrl-C on a running study: Snakemake's cancellation report becomes one line."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.workflow import ROOT, scratch_copy

from relulab.study import console


def test_lines_pass_until_the_interrupt_then_one_line_says_how_to_resume():
    out = io.StringIO()
    shown = console.Console(out)
    shown.line("[Wed Dec  2 02:19:17 2026]\n")
    shown.line("rule train_relu:\n")
    shown.line("Terminating processes on user request, this might take some time.\n")
    shown.line("Error in rule train_relu:\n")
    shown.line("    jobid: 3\n")
    shown.close()
    assert out.getvalue().splitlines() == [
        "[Wed Dec  2 02:19:17 2026]",
        "rule train_relu:",
        console.STOPPED,
    ]


def test_without_an_interrupt_everything_passes_and_nothing_is_added():
    out = io.StringIO()
    shown = console.Console(out)
    for text in ("a\n", "Error in rule x:\n", "b\n"):
        shown.line(text)
    shown.close()
    assert out.getvalue() == "a\nError in rule x:\nb\n"


def test_bin_study_pipes_snakemake_through_the_console():
    script = (ROOT / "bin" / "study").read_text()
    assert "| \\\n    .venv/bin/python -m relulab.study.console" in script.replace("|\n", "| \\\n")
    assert "status=${PIPESTATUS[0]}" in script


@pytest.mark.slow
def test_ctrl_c_on_a_running_study_prints_one_line(tmp_path):
    """A real study, interrupted from the keyboard while it trains (SIGINT to the whole
    foreground process group, as a terminal sends it), through bin/study's pipe."""
    study = scratch_copy(tmp_path / "study")
    snakemake = Path(sys.executable).parent / "snakemake"
    pipe = (
        f"{snakemake} --cores 2 --configfile config/smoke.yaml 2>&1 | "
        f"{sys.executable} -m relulab.study.console"
    )
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(
        ["bash", "-c", f"{pipe}; exit ${{PIPESTATUS[0]}}"],
        cwd=study,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    logs = study / "results" / "logs" / "train"
    deadline = time.monotonic() + 300
    while not any("progress" in log.read_text() for log in logs.glob("*.log") if log.is_file()):
        assert process.poll() is None and time.monotonic() < deadline, "no job trained"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    lines = [line for line in output.splitlines() if line.strip()]
    assert process.returncode != 0
    assert lines[-1] == console.STOPPED
    assert "Error in rule" not in output and "Traceback" not in output
