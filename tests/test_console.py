"""bin/study's console: every line of Snakemake's output except the reports of jobs that Ctrl-C
cancelled; a real failure in full; Snakemake's output and the study's end even when the filter
dies; a readable plan for a dry run."""

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

# Snakemake 9's output for three local jobs (a shell rule, a script rule, and a rule that fails
# on its own) when Ctrl-C comes while the first two run: recorded from a real run.
STARTED = """\
[Sun Dec  6 19:50:17 2026]
localrule slow:
    output: a.txt
    log: logs/slow.log
    jobid: 1
    resources: tmpdir=/tmp
[Sun Dec  6 19:50:17 2026]
localrule slowpy:
    output: b.txt
    log: logs/slowpy.log
    jobid: 2
    resources: tmpdir=/tmp
[Sun Dec  6 19:50:17 2026]
localrule broken:
    output: c.txt
    log: logs/broken.log
    jobid: 3
    resources: tmpdir=/tmp
"""
BROKEN = """\
RuleException:
CalledProcessError in file "/tmp/study/fail.smk", line 17:
Command 'set -euo pipefail;  echo broken > logs/broken.log; exit 3' returned non-zero exit status 3.
[Sun Dec  6 19:50:17 2026]
Error in rule broken:
    message: None
    jobid: 3
    output: c.txt
    log: logs/broken.log (check log file(s) for error details)
    shell:
        echo broken > logs/broken.log; exit 3
        (command exited with non-zero exit code)
"""
CANCELLED = """\
Terminating processes on user request, this might take some time.
Traceback (most recent call last):
  File "/tmp/study/.snakemake/scripts/tmpagg22289.s.py", line 5, in <module>
    time.sleep(30)
KeyboardInterrupt
RuleException:
CalledProcessError in file "/tmp/study/fail.smk", line 7:
Command 'set -euo pipefail;  sleep 30; touch a.txt' died with <Signals.SIGINT: 2>.
[Sun Dec  6 19:50:22 2026]
Error in rule slow:
    message: None
    jobid: 1
    output: a.txt
    log: logs/slow.log (check log file(s) for error details)
    shell:
        sleep 30; touch a.txt
        (command exited with non-zero exit code)
RuleException:
CalledProcessError in file "/tmp/study/fail.smk", line 12:
Command 'set -euo pipefail;  python .snakemake/scripts/tmpagg.s.py' died with <Signals.SIGINT: 2>.
[Sun Dec  6 19:50:22 2026]
Error in rule slowpy:
    message: None
    jobid: 2
    output: b.txt
    log: logs/slowpy.log (check log file(s) for error details)
"""
CLOSING = """\
Complete log(s): /tmp/study/.snakemake/log/2026-12-06T195016.729981.snakemake.log
Elapsed time: 0:00:05.472719
"""
WORKFLOW_ERROR = "WorkflowError:\nAt least one job did not complete successfully.\n"


def shown(text: str, interrupt_at: str | None = None) -> str:
    """What the console shows of ``text``; SIGINT reaches it before the line ``interrupt_at``."""
    out = io.StringIO()
    filtered = console.Console(out)
    for line in text.splitlines(keepends=True):
        if line == interrupt_at:
            filtered.interrupt()
        filtered.line(line)
    filtered.close()
    return out.getvalue()


def test_without_an_interrupt_everything_passes_and_nothing_is_added():
    text = STARTED + BROKEN + CLOSING + WORKFLOW_ERROR
    assert shown(text) == text


def test_a_ctrl_c_drops_only_the_cancelled_jobs_reports_and_says_how_to_resume():
    text = STARTED + CANCELLED + CLOSING + WORKFLOW_ERROR
    assert shown(text) == STARTED + CLOSING + console.STOPPED + "\n"


def test_a_job_that_failed_on_its_own_is_shown_in_full_with_a_ctrl_c():
    """Failed before the Ctrl-C, or reported among the cancelled jobs: in full either way."""
    before = shown(STARTED + BROKEN + CANCELLED + CLOSING + WORKFLOW_ERROR)
    assert before == STARTED + BROKEN + CLOSING + WORKFLOW_ERROR + console.STOPPED + "\n"
    during = shown(
        STARTED + CANCELLED + BROKEN + CLOSING + WORKFLOW_ERROR,
        interrupt_at=CANCELLED.splitlines(keepends=True)[1],
    )
    assert during == STARTED + BROKEN + CLOSING + WORKFLOW_ERROR + console.STOPPED + "\n"


def test_jobs_finished_before_the_ctrl_c_are_not_taken_for_cancelled_ones():
    finished = (
        "[Sun Dec  6 19:50:20 2026]\nFinished jobid: 1 (Rule: slow)\n1 of 4 steps (25%) done\n"
    )
    # Job 1 finished, so a later failure report of job 1 is not a cancellation.
    text = STARTED + finished + CANCELLED + CLOSING
    result = shown(text)
    assert "Error in rule slow:" in result and "    jobid: 1\n" in result
    assert "Error in rule slowpy:" not in result


def test_a_traceback_that_is_not_an_interrupt_passes():
    crash = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad\n'
    result = shown(STARTED + CANCELLED + crash)
    assert crash in result and "KeyboardInterrupt" not in result


def test_the_plan_keeps_one_table_of_jobs_and_drops_the_reasons():
    table = "Job stats:\njob      count\n-----  -------\ntrain      3\ntotal      3\n\n"
    reasons = "Reasons:\n    (check individual jobs above for details)\n    output files:\n"
    text = "Building DAG of jobs...\n" + table + table + reasons + "This was a dry-run.\n"
    out = io.StringIO()
    plan = console.Plan(out)
    for line in text.splitlines(keepends=True):
        plan.line(line)
    assert out.getvalue() == "Building DAG of jobs...\n" + table + "This was a dry-run.\n"


def test_the_filter_reads_nothing_ahead_of_what_it_has_shown():
    read, write = os.pipe()
    os.write(write, b"one\ntwo\n")
    lines = console.lines(read)
    assert next(lines) == "one\n"
    os.close(write)
    # What is left in the pipe is what a reader after the filter would get.
    assert os.read(read, 100) == b"two\n"
    os.close(read)


# bin/study's pipe, through its own run_study function, on small workflows: a shell rule that
# fails, and rules that take a few seconds.
WORKFLOW = """\
rule all:
    input:
        "a.txt",
        "b.txt",

rule slow:
    output:
        "a.txt",
    log:
        "logs/slow.log",
    shell:
        "sleep {SLEEP}; touch {{output}}"

rule second:
    input:
        "a.txt",
    output:
        "b.txt",
    log:
        "logs/second.log",
    shell:
        "{SECOND}"
"""
FAILING = "echo 'disk full, say' > {log}; exit 3"


def small_study(tmp_path: Path, sleep: float, second: str) -> Path:
    study = tmp_path / "study"
    (study / "workflow" / "profiles").mkdir(parents=True)
    (study / "Snakefile").write_text(WORKFLOW.format(SLEEP=sleep, SECOND=second))
    profile = ROOT / "workflow" / "profiles" / "default"
    (study / "workflow" / "profiles" / "default").mkdir()
    (study / "workflow/profiles/default/config.yaml").write_text(
        (profile / "config.yaml").read_text()
    )
    return study


def bin_study(study: Path, *args: str) -> subprocess.Popen:
    """bin/study's run_study in ``study``, with this interpreter's environment, in its own
    session (a terminal's foreground group)."""
    script = f'source {ROOT / "bin" / "study"}; run_study {Path(sys.executable).parent} "$@"'
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), environment.get("PYTHONPATH", "")]
    )
    return subprocess.Popen(
        ["bash", "-c", script, "bin/study", *args],
        cwd=study,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def processes_in_group(group: int, needle: str) -> list[int]:
    """Processes of process group ``group`` whose command line holds ``needle``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) == group and needle in command:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_failing_rule_is_shown_in_full_through_bin_study(tmp_path):
    study = small_study(tmp_path, 0, FAILING)
    process = bin_study(study, "--cores", "1")
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1, output
    report = output[output.index("Error in rule second:") :]
    for line in ("    jobid: 2", "    log: logs/second.log", "exit 3", "WorkflowError:"):
        assert line in report, output
    assert console.STOPPED not in output


@pytest.mark.slow
def test_a_killed_filter_leaves_snakemakes_output_and_the_end_on_the_terminal(tmp_path):
    study = small_study(tmp_path, 3, FAILING)
    process = bin_study(study, "--cores", "1")
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.rstrip().endswith("rule slow:"):
            break
    (filter_pid,) = processes_in_group(process.pid, "relulab.study.console")
    os.kill(filter_pid, signal.SIGKILL)
    rest, _ = process.communicate(timeout=300)
    output = "".join(seen) + rest
    # Snakemake went on (it was not killed by a broken pipe): the next rule ran and failed,
    # its report reached the terminal, and the study's end is reported with its exit status.
    assert process.returncode == 1, output
    assert "the console filter stopped" in rest
    assert "Error in rule second:" in rest and "    jobid: 2" in rest
    assert "relulab: the study ended: Snakemake stopped with exit status 1" in rest


@pytest.mark.slow
def test_ctrl_c_with_a_failed_job_shows_the_failure_and_one_line(tmp_path):
    study = small_study(tmp_path, 60, "touch {output}")
    (study / "Snakefile").write_text(
        (study / "Snakefile").read_text()
        + '\nrule broken:\n    output:\n        "c.txt",\n    log:\n        "logs/broken.log",'
        + '\n    shell:\n        "exit 3"\n'
    )
    process = bin_study(study, "--cores", "2", "--keep-going", "a.txt", "c.txt")
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "(command exited with non-zero exit code)" in line:
            break
    time.sleep(1)
    os.killpg(process.pid, signal.SIGINT)
    rest, _ = process.communicate(timeout=120)
    output = "".join(seen) + rest
    assert process.returncode != 0
    assert "Error in rule broken:" in output
    assert "Error in rule slow:" not in output
    assert output.splitlines()[-1] == console.STOPPED


@pytest.mark.slow
def test_ctrl_c_on_a_running_study_prints_one_line(tmp_path):
    """A real study, interrupted from the keyboard while it trains (SIGINT to the whole
    foreground process group, as a terminal sends it), through bin/study's pipe."""
    study = scratch_copy(tmp_path / "study")
    process = bin_study(study, "--configfile", "config/smoke.yaml")
    # Without --directory the study works in its own folder.
    logs = study / "studies" / "relulab-smoke" / "results" / "logs" / "train"
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


@pytest.mark.slow
def test_a_dry_run_through_bin_study_is_a_short_plan(tmp_path):
    """``bin/study -n``: the jobs per rule once, no lists of reasons, and the study's points."""
    study = scratch_copy(tmp_path / "study")
    process = bin_study(study, "-n", "--configfile", "config/smoke.yaml")
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    lines = output.splitlines()
    # Short lines, but for Snakemake's one naming the study's folder (as long as its path).
    assert len(lines) < 50, output
    assert max(len(line) for line in lines if str(study) not in line) <= 110, output
    assert output.count("Job stats:") == 1 and "Reasons:" not in output
    assert "Plan of study relulab-smoke, in studies/relulab-smoke/: 6 grid points, 0 done" in output
