"""What a study's console shows: Snakemake's output as it comes, and one line after Ctrl-C.

``bin/study`` pipes Snakemake's output through ``python -m relulab.study.console``. Ctrl-C
reaches every process of the terminal's foreground group: Snakemake cancels its jobs and reports
each cancelled job as an error, and the jobs themselves stop. This filter survives the signal,
passes every line written before it, swallows what follows (the cancellation's error reports) and
ends with one line saying what was kept and how to resume. Snakemake's own words for a
cancellation (``INTERRUPTED``) count as the signal too, for a Snakemake interrupted on its own.
"""

from __future__ import annotations

import signal
import sys
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


class Console:
    """Copies lines until interrupted, then swallows them; ``close`` says it in one line."""

    def __init__(self, out: TextIO):
        self.out = out
        self.interrupted = False

    def interrupt(self, *_) -> None:
        self.interrupted = True

    def line(self, text: str) -> None:
        if any(marker in text for marker in INTERRUPTED):
            self.interrupted = True
        if not self.interrupted:
            self.out.write(text)
            self.out.flush()

    def close(self) -> None:
        if self.interrupted:
            self.out.write(STOPPED + "\n")
            self.out.flush()


def main(source: TextIO = sys.stdin, out: TextIO = sys.stderr) -> int:
    console = Console(out)
    signal.signal(signal.SIGINT, console.interrupt)
    for text in source:
        console.line(text)
    console.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
