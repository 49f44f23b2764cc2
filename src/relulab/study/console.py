"""What a study's console shows: all of Snakemake's output, less the reports of cancelled jobs.

``bin/study`` pipes Snakemake's output through ``python -m relulab.study.console``. Ctrl-C
reaches every process of the terminal's foreground group: Snakemake cancels its running jobs
and reports each of them as a failed job (with, for a job that was in Python, its
``KeyboardInterrupt`` traceback), and the jobs themselves stop. This filter survives the signal
and knows which jobs were running when it came (from Snakemake's job headers and "Finished"
lines), so it drops exactly those jobs' cancellation reports and passes every other line: a job
that failed on its own, before or after the Ctrl-C (an exit status other than a cancellation's),
is shown in full. It ends with one line
saying what was kept and how to resume. Snakemake's own words for a cancellation
(``INTERRUPTED``) count as the signal too, for a Snakemake interrupted on its own.

Lines are read without read-ahead, so that what the filter has not shown is still in the pipe
if it dies: ``bin/study`` then passes the rest straight to the terminal.

``--plan`` (``bin/study -n``) condenses a dry run: the table of jobs per rule once, without the
list of reasons, whose lines name every job and run to thousands of characters.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from typing import TextIO

# What Snakemake writes when it is cancelled from the keyboard.
INTERRUPTED = (
    "Terminating processes on user request",
    "Cancelling snakemake on user request",
)

STOPPED = (
    "relulab: stopped by Ctrl-C. Finished grid points are kept, and a point in training "
    "resumes from its last epoch: run the same command again to go on "
    "(`relulab status` shows what is done and what is left)."
)

# Snakemake's job header ("rule train_x:", "localrule summarize:") and the lines of its reports.
_JOB = re.compile(r"^(?:local)?(?:rule|checkpoint) (?P<rule>\S+):$")
_JOBID = re.compile(r"^\s+jobid: (?P<jobid>\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (?P<jobid>\d+) ")
_ERROR = re.compile(r"^Error in rule (?P<rule>\S+):$")
_TIMESTAMP = re.compile(r"^\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\]$")
_REMOVING = re.compile(r"^Removing output files of failed job (?P<job>\S+?)(?:\[.*\])? since ")
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
# Snakemake's closing words after failed jobs; after a Ctrl-C alone they only repeat it.
_WORKFLOW_ERROR = ("WorkflowError:", "At least one job did not complete successfully.")
# How a job that Ctrl-C stopped ends: by the signal, or by the exit status relulab's training
# script gives it (130); any other status is a failure of the job's own.
_EXIT_STATUS = re.compile(r"returned non-zero exit status (?P<status>\d+)")
_CANCELLED_STATUSES = {"130", "143"}
# A RuleException's lines come before the "Error in rule" report of the same job: held until it.
_HELD_AT_MOST = 40


def _failed_on_its_own(report: list[str]) -> bool:
    """Whether a job's held report (its RuleException) names an exit status other than a
    cancellation's."""
    return any(
        match["status"] not in _CANCELLED_STATUSES
        for line in report
        if (match := _EXIT_STATUS.search(line))
    )


class Console:
    """Passes lines, holding back only what may turn out to be a cancelled job's report."""

    def __init__(self, out: TextIO):
        self.out = out
        self.interrupted = False
        self.failed = False  # a job failed on its own (its report was shown)
        self.running: dict[str, str] = {}  # jobid -> rule, started and not finished
        self.cancelled: dict[str, str] = {}  # the jobs running when the interrupt came
        self._header_rule: str | None = None  # a job header whose jobid line is next
        self._held: list[str] = []
        self._mode = "pass"

    def interrupt(self, *_) -> None:
        if not self.interrupted:
            self.interrupted = True
            self.cancelled = dict(self.running)
            # A failure report already under way was shown so far: the rest of it passes too.
            self._mode = "pass"

    def _write(self, texts: list[str]) -> None:
        if texts:
            self.out.write("".join(texts))
            self.out.flush()

    def _flush_held(self) -> None:
        held, self._held = self._held, []
        self._write(held)

    def _track(self, text: str) -> None:
        """Which jobs are running: from their headers and Snakemake's "Finished" lines."""
        if match := _JOB.match(text):
            self._header_rule = match["rule"]
        elif self._header_rule and (match := _JOBID.match(text)):
            self.running[match["jobid"]] = self._header_rule
            self._header_rule = None
        elif not text.startswith((" ", "\t")):
            self._header_rule = None
        if match := _FINISHED.match(text):
            self.running.pop(match["jobid"], None)

    def line(self, text: str) -> None:
        stripped = text.rstrip("\r\n")
        if any(marker in stripped for marker in INTERRUPTED):
            self.interrupt()
            return
        self._track(stripped)
        if not self.interrupted:
            # A job's failure before any interrupt: shown, and the job no longer runs.
            if _ERROR.match(stripped):
                self._mode = "error"
            elif self._mode == "error" and (match := _JOBID.match(stripped)):
                self.failed = True
                self.running.pop(match["jobid"], None)
                self._mode = "pass"
            elif not stripped.startswith((" ", "\t")):
                self._mode = "pass"
            self._write([text])
            return
        self._after_interrupt(stripped, text)

    def _after_interrupt(self, stripped: str, text: str) -> None:
        mode = self._mode
        if mode == "swallow":  # the rest of a cancelled job's report: its indented lines
            if stripped.startswith((" ", "\t")):
                return
            self._mode = "pass"
        elif mode == "removed":  # the list of files under "Removing output files of ..."
            self._mode = "pass"
            return
        elif mode == "traceback":
            self._held.append(text)
            if stripped and not stripped.startswith((" ", "\t", _TRACEBACK, *_CHAINED)):
                if stripped.startswith("KeyboardInterrupt"):
                    self._held = []
                else:
                    self._flush_held()
                self._mode = "pass"
            return
        elif mode == "error":  # "Error in rule x:" held until its jobid says whose it is
            if match := _JOBID.match(stripped):
                if match["jobid"] in self.cancelled and not _failed_on_its_own(self._held):
                    self._held = []
                    self._mode = "swallow"
                    return
                self.failed = True
                self._held.append(text)
                self._flush_held()
                self._mode = "pass"
                return
            if stripped.startswith((" ", "\t")):
                self._held.append(text)
                return
            self._flush_held()
            self._mode = "pass"
        elif mode in ("held", "rule_exception"):
            # A timestamp or a RuleException: it belongs to whatever report comes next.
            if _ERROR.match(stripped):
                self._held.append(text)
                self._mode = "error"
                return
            if _TIMESTAMP.match(stripped) or (
                mode == "rule_exception" and len(self._held) < _HELD_AT_MOST
            ):
                self._held.append(text)
                return
            self._flush_held()
            self._mode = "pass"
        elif mode == "workflow_error":
            if stripped == _WORKFLOW_ERROR[1] and not self.failed:
                self._held = []
                self._mode = "pass"
                return
            self._flush_held()
            self._mode = "pass"
        self._start(stripped, text)

    def _start(self, stripped: str, text: str) -> None:
        """A line after the interrupt, outside any report being held."""
        if stripped == _TRACEBACK:
            self._held, self._mode = [text], "traceback"
        elif _ERROR.match(stripped):
            self._held, self._mode = [text], "error"
        elif _TIMESTAMP.match(stripped):
            self._held, self._mode = [text], "held"
        elif stripped == "RuleException:":
            self._held, self._mode = [text], "rule_exception"
        elif stripped == _WORKFLOW_ERROR[0]:
            self._held, self._mode = [text], "workflow_error"
        elif (match := _REMOVING.match(stripped)) and match["job"] in self.cancelled.values():
            self._mode = "removed"
        else:
            self._write([text])

    def close(self) -> None:
        self._flush_held()
        if self.interrupted:
            self._write([STOPPED + "\n"])


class Plan:
    """A dry run's output, condensed: the jobs-per-rule table once, no list of reasons."""

    def __init__(self, out: TextIO):
        self.out = out
        self._tables = 0
        self._mode = "pass"

    def line(self, text: str) -> None:
        stripped = text.rstrip("\r\n")
        if stripped == "Job stats:":
            self._tables += 1
            self._mode = "table" if self._tables == 1 else "drop_table"
        elif stripped == "Reasons:":
            self._mode = "drop_reasons"
        elif self._mode == "drop_reasons" and not stripped.startswith((" ", "\t")):
            self._mode = "pass"
        elif self._mode in ("table", "drop_table") and not stripped:
            self._mode = "pass" if self._mode == "table" else "drop_blank"
        elif self._mode == "drop_blank":
            self._mode = "pass"
            if not stripped:
                return
        if self._mode not in ("drop_table", "drop_reasons", "drop_blank"):
            self.out.write(text)
            self.out.flush()

    def interrupt(self, *_) -> None:
        pass

    def close(self) -> None:
        pass


def lines(fd: int) -> Iterator[str]:
    """Lines from ``fd`` as they come, read a byte at a time: nothing is read ahead of what has
    been shown (Snakemake writes a few hundred kilobytes at most)."""
    line = bytearray()
    while chunk := os.read(fd, 1):
        line += chunk
        if chunk == b"\n":
            yield line.decode(errors="replace")
            line.clear()
    if line:
        yield line.decode(errors="replace")


def main(argv: list[str] | None = None, out: TextIO = sys.stderr) -> int:
    argv = sys.argv[1:] if argv is None else argv
    console = Plan(out) if "--plan" in argv else Console(out)
    signal.signal(signal.SIGINT, console.interrupt)
    for text in lines(sys.stdin.fileno()):
        console.line(text)
    console.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
