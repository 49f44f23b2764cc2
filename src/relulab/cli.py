"""relulab: what ReLU's kink at 0 costs, measured. A study runs with Snakemake (see README).

Run a study from the project folder (the one with the Snakefile):
  bin/study                                  the default study (config/config.yaml)
  bin/study --configfile config/smoke.yaml   another study (any snakemake arguments)
  bin/study -n                               its plan: jobs per rule, grid points to train
Each study works in studies/<study>/ (the config's `study`): results/ there holds its tables,
figures, findings.md, logs and MLflow store. Then:
  relulab status   how far the study is: grid points done, training, left, and an ETA
                   (--watch: a live view; --study NAME: another study)
  relulab ui       the MLflow UI on the study's runs, on 127.0.0.1 only
  relulab fetch    download MNIST, Fashion-MNIST or CIFAR-10 once (the default study needs none)

``relulab status`` reads only files: a point is done when ``results/runs/<point>/point.json``
exists in the study's folder, in training while it has a checkpoint or progress lines in a
training log, left otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from relulab.data import vision
from relulab.study import paths, where
from relulab.study.watch import duration as _duration

DEFAULT_CONFIG = "config/config.yaml"
# "2026-12-01 23:20:16,123 INFO relulab.train.job: progress <point> epoch 3/15: ... 2.1 s/epoch"
_PROGRESS = re.compile(
    r"^(?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ .*?progress (?P<point>\S+) "
    r"epoch (?P<epoch>\d+)/(?P<epochs>\d+):.*?(?P<seconds>[\d.]+) s/epoch"
)
# A log written to within this many seconds belongs to a job that is still running.
ACTIVE_S = 120.0


def _fetch(args: argparse.Namespace) -> int:
    status = 0
    for name in args.datasets:
        try:
            where = vision.fetch(name, args.data_dir, accept_unverified=args.accept_unverified)
        except Exception as error:  # noqa: BLE001 - report each dataset and go on
            print(f"relulab fetch: {name}: {error}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: ready in {where}")
    return status


@dataclass
class Progress:
    """The newest progress line of a point."""

    epoch: int
    epochs: int
    seconds_per_epoch: float
    when: float  # seconds since the epoch (local time of the log)


def read_progress(logs: list[Path]) -> dict[str, Progress]:
    """Each point's newest progress line in ``logs`` (training jobs' logs)."""
    found: dict[str, Progress] = {}
    for path in logs:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            match = _PROGRESS.match(line)
            if match is None:
                continue
            when = datetime.strptime(match["when"], "%Y-%m-%d %H:%M:%S").timestamp()
            found[match["point"]] = Progress(
                int(match["epoch"]), int(match["epochs"]), float(match["seconds"]), when
            )
    return found


@dataclass
class StudyStatus:
    done: list[str]
    training: dict[str, Progress | None]
    left: list[str]
    epochs: int
    active_jobs: int
    seconds_per_epoch: float | None
    # Whether any training job has run: a study with none yet is "not started".
    started: bool = True

    def eta_seconds(self) -> float | None:
        """Epochs still to train times the recent seconds per epoch, over the running jobs."""
        if self.seconds_per_epoch is None:
            return None
        remaining = len(self.left) * self.epochs
        for progress in self.training.values():
            remaining += self.epochs - (progress.epoch if progress else 0)
        return remaining * self.seconds_per_epoch / max(1, self.active_jobs)


def study_status(point_ids: list[str], epochs: int, results: Path, now: float) -> StudyStatus:
    """Points done, in training and left, from the files a study writes under ``results``."""
    logs = sorted((results / "logs").rglob("*.log"))
    progress = read_progress(logs)
    done, training, left = [], {}, []
    for point in point_ids:
        run_dir = results / "runs" / point
        if (run_dir / "point.json").exists():
            done.append(point)
        elif paths.checkpoint(run_dir).parent.exists() or point in progress:
            training[point] = progress.get(point)
        else:
            left.append(point)
    active = sum(now - path.stat().st_mtime < ACTIVE_S for path in logs if "train" in path.parts)
    recent = sorted(progress.values(), key=lambda p: p.when)[-8:]
    speed = sum(p.seconds_per_epoch for p in recent) / len(recent) if recent else None
    started = bool(done or training) or any("train" in path.parts for path in logs)
    return StudyStatus(done, training, left, epochs, active, speed, started)


def format_status(
    name: str, status: StudyStatus, now: float, results: Path = Path("results")
) -> str:
    """What ``relulab status`` prints; ``results`` is the study's results folder."""
    total = len(status.done) + len(status.training) + len(status.left)
    lines = [
        f"{name}: {total} grid points: {len(status.done)} done, "
        f"{len(status.training)} in training, {len(status.left)} left"
    ]
    for point, progress in status.training.items():
        if progress is None:
            lines.append(f"  {point}: started (checkpoint, no progress line yet)")
        else:
            ago = _duration(max(0.0, now - progress.when))
            lines.append(f"  {point}: epoch {progress.epoch}/{progress.epochs} (logged {ago} ago)")
    eta = status.eta_seconds()
    if not status.training and not status.left:
        lines.append(f"Training is complete; see {results / 'findings.md'} and `relulab ui`.")
    elif not status.started:
        lines.append("Not started: no training job has run yet (`bin/study` starts it).")
    elif eta is None:
        lines.append("ETA: unknown until a training job logs its first epoch.")
    elif status.active_jobs == 0:
        lines.append("No training job has written to its log in the last 2 minutes: stopped?")
    else:
        lines.append(
            f"ETA of training: about {_duration(eta)} ({status.active_jobs} jobs running, "
            f"{status.seconds_per_epoch:.1f} s per epoch of a point)"
        )
    return "\n".join(lines)


def _status(args: argparse.Namespace) -> int:
    from relulab.study import grid, watch

    study = _study(args)
    points = [point.id for point in grid.expand(study.settings)]
    results = where.shown(study.results)

    def read(now: float) -> StudyStatus:
        return study_status(points, study.settings.training.epochs, results, now)

    def describe(status: StudyStatus, now: float) -> str:
        return format_status(study.name, status, now, results)

    if args.watch:
        return watch.watch(read, study.name, describe, args.interval)
    now = time.time()
    print(describe(read(now), now))
    return 0


def _ui(args: argparse.Namespace) -> int:
    from relulab.train.tracking_study import tracking_uri
    from relulab.train.tracking_ui import ui_command, ui_environment, ui_url

    study = _study(args)
    if study.folder.is_dir():  # the store's relative paths are the study's
        os.chdir(study.folder)
    uri = tracking_uri(study.settings.tracking.configured_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        print(f"relulab ui: no MLflow store at {uri} yet; run the study first", file=sys.stderr)
        return 1
    command = ui_command(uri, args.port)
    print(f"MLflow UI of study {study.name}, once started (Ctrl-C stops it):")
    print(f"  {ui_url(uri, study.settings.tracking.experiment, args.port)}")
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", *command], ui_environment(dict(os.environ)))
    return 0  # not reached: the UI replaces this process


def _study(args: argparse.Namespace) -> where.Study:
    """The study a command means (``relulab.study.where``), or exit with what to give."""
    try:
        return where.locate(args.configfile, args.study, args.directory)
    except where.StudyNotFoundError as error:
        raise SystemExit(f"relulab {args.command}: {error}") from None


def _add_config_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--study",
        metavar="NAME",
        help="the study of that name (its folder studies/NAME/, its config the one in config/ "
        "that names it); default: the study that ran last, or the default study",
    )
    command.add_argument(
        "--configfile",
        nargs="+",
        default=[],
        metavar="FILE",
        help=f"the study's config, as given to snakemake (default: {DEFAULT_CONFIG})",
    )
    command.add_argument(
        "--directory",
        metavar="DIR",
        help="the study's folder, for a study run with snakemake --directory DIR",
    )


def _audit(args: argparse.Namespace) -> int:
    from relulab.monitor import audit

    # Options left out keep the monitor's own defaults (the callback's), stated once there.
    given = {"probe_size": args.probe_size, "seed": args.seed, "chunk": args.chunk}
    audit.run(
        args.factory,
        args.checkpoint,
        args.data,
        args.out,
        mlflow_uri=args.mlflow_uri,
        experiment=args.experiment,
        **{key: value for key, value in given.items() if value is not None},
    )
    return 0


def _add_audit(commands) -> None:
    """``relulab audit``: the dead-unit monitor's check of a saved model (relulab.monitor, which
    loads torch: imported only when the command runs, so that other commands start fast)."""
    audit = commands.add_parser(
        "audit",
        help="dead, inactive and sparse units per layer of a saved model",
        description="Check a saved model's activations as the DeadUnitMonitor callback does: "
        "the same probe set (size, seed), the same metric names.",
    )
    audit.add_argument("factory", help="import path of a function building the model, pkg.mod:fn")
    audit.add_argument("--checkpoint", help="a state dict or a Lightning .ckpt")
    audit.add_argument(
        "--data",
        required=True,
        help="import path pkg.mod:fn returning a Dataset/DataLoader/tensors, or a relulab "
        "dataset (mnist1d, digits, ...: its training split)",
    )
    audit.add_argument("--out", default="audit", help="folder for the CSV files and figure")
    audit.add_argument(
        "--probe-size", type=int, help="probe examples (default: the callback's, 1024)"
    )
    audit.add_argument(
        "--seed", type=int, help="seed of the probe draw (default: the callback's, 0)"
    )
    audit.add_argument("--chunk", type=int, help="examples per pass (default: the callback's)")
    audit.add_argument("--mlflow-uri", help="log an MLflow run to this tracking URI")
    audit.add_argument("--experiment", default="relulab-audit", help="its MLflow experiment")
    audit.set_defaults(run=_audit)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="relulab",
        # What relulab is, then how to run a study and what each command does.
        description="\n\n".join(__doc__.split("\n\n")[:2]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="command")
    status = commands.add_parser(
        "status",
        help="grid points done, in training and left, and an ETA",
        description="How far a study is, read from its folder's results/ (studies/<study>/).",
    )
    _add_config_option(status)
    status.add_argument(
        "--watch",
        action="store_true",
        help="a live view, refreshed until training is complete (Ctrl-C leaves it)",
    )
    status.add_argument(
        "--interval", type=float, default=2.0, help="seconds between refreshes (default: 2)"
    )
    status.set_defaults(run=_status)
    ui = commands.add_parser(
        "ui",
        help="the MLflow UI on the study's runs (127.0.0.1 only)",
        description="Start the MLflow UI on the study's tracking store, bound to 127.0.0.1.",
    )
    _add_config_option(ui)
    ui.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    ui.set_defaults(run=_ui)
    fetch = commands.add_parser(
        "fetch",
        help="download datasets into the data directory (needs network, once)",
        description="Download datasets with torchvision into the data directory and check them.",
    )
    fetch.add_argument(
        "datasets",
        nargs="+",
        choices=vision.DATASETS,
        metavar="dataset",
        help=f"one or more of {', '.join(vision.DATASETS)}",
    )
    fetch.add_argument(
        "--data-dir",
        default=vision.DEFAULT_DATA_DIR,
        help=f"where to put them (default: {vision.DEFAULT_DATA_DIR}, as in the config)",
    )
    fetch.add_argument(
        "--accept-unverified",
        action="store_true",
        help="accept files already there that differ from the published checksums "
        "(files you made yourself); they are then read without network",
    )
    fetch.set_defaults(run=_fetch)
    _add_audit(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("relulab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
