"""``relulab status --watch``: a study's grid points done, in training and left, kept up to date.

What W&B Sweeps and Ray Tune users expect from a running search: one live table instead of
``tail -f`` or repeated ``relulab status``. Drawn with rich's ``Live`` display when rich is
installed (a bar of points done, one row per point in training with its epoch, and the ETA);
otherwise the same text as ``relulab status``, printed again at each refresh. It ends by itself
once every point is trained, or with Ctrl-C. The numbers are ``relulab status``'s, read from
the study's files at each refresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol


class Progress(Protocol):
    epoch: int
    epochs: int
    when: float


class Status(Protocol):
    """What ``relulab.cli.study_status`` returns."""

    done: list[str]
    training: dict[str, Progress | None]
    left: list[str]
    active_jobs: int

    def eta_seconds(self) -> float | None: ...


def duration(seconds: float) -> str:
    """A duration as people say it: 45 s, 12 min, 1.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def finished(status: Status) -> bool:
    return not status.training and not status.left


def view(name: str, status: Status, now: float) -> Any:
    """The live view of one reading, as rich renderables."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    total = len(status.done) + len(status.training) + len(status.left)
    head = Table.grid(padding=(0, 2))
    head.add_row(
        Text(name, style="bold"),
        ProgressBar(total=max(total, 1), completed=len(status.done), width=30),
        Text(
            f"{len(status.done)}/{total} points done · {len(status.training)} training · "
            f"{len(status.left)} left"
        ),
    )
    rows = Table(box=None, show_header=bool(status.training), padding=(0, 2))
    rows.add_column("point in training")
    rows.add_column("epoch", justify="right")
    rows.add_column("")
    rows.add_column("logged", justify="right")
    for point, progress in status.training.items():
        if progress is None:
            rows.add_row(point, "-", "", "checkpoint, no progress line yet")
            continue
        rows.add_row(
            point,
            f"{progress.epoch}/{progress.epochs}",
            ProgressBar(total=max(progress.epochs, 1), completed=progress.epoch, width=20),
            f"{duration(max(0.0, now - progress.when))} ago",
        )
    eta = status.eta_seconds()
    if finished(status):
        foot = "Training is complete."
    elif eta is None:
        foot = "ETA: unknown until a training job logs its first epoch."
    else:
        foot = f"ETA of training: about {duration(eta)} ({status.active_jobs} jobs running)"
    return Group(head, rows, Text(foot + "  (Ctrl-C leaves this view; the study goes on)"))


def watch(
    read: Callable[[float], Status],
    name: str,
    describe: Callable[[Status, float], str],
    interval: float = 2.0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Show ``read(now)`` every ``interval`` seconds until training is complete (or Ctrl-C).
    ``describe`` is the plain text used when rich is not installed."""
    try:
        import rich.live
    except ImportError:
        return _print_until_finished(read, describe, interval, clock, sleep)
    try:
        now = clock()
        status = read(now)
        with rich.live.Live(view(name, status, now), auto_refresh=False) as live:
            while not finished(status):
                sleep(interval)
                now = clock()
                status = read(now)
                live.update(view(name, status, now), refresh=True)
    except KeyboardInterrupt:
        pass
    return 0


def _print_until_finished(read, describe, interval, clock, sleep) -> int:
    """Without rich: ``relulab status``'s text at every refresh."""
    try:
        while True:
            now = clock()
            status = read(now)
            print(describe(status, now), flush=True)
            if finished(status):
                return 0
            sleep(interval)
    except KeyboardInterrupt:
        return 0
