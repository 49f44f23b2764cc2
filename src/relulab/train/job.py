"""One training job: all seeds of one grid point, tracked in MLflow, written as CSV and JSON.

The job resumes from its last checkpoint when it was interrupted, and finds its MLflow runs
again by their tags, so running it twice neither retrains finished epochs nor duplicates runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from relulab.data import prepared as datasets
from relulab.nn.models import MIXED, weight_dtype
from relulab.study import paths
from relulab.study import settings as study_settings
from relulab.study.grid import Point, expand, fingerprint, is_finished
from relulab.study.settings import Study
from relulab.train import checkpoints, control, rows, store, tracking, tracking_names
from relulab.train import conv as conv_training
from relulab.train.core import Settings, seed_status
from relulab.train.hashing import parameter_hashes
from relulab.train.lightning import SaveEveryEpoch as SaveEveryEpoch  # tests patch it here
from relulab.train.lightning import SeedStackModule, fit
from relulab.train.provenance import provenance
from relulab.train.stacked import build_stack
from relulab.train.tracking import PointTracker

log = logging.getLogger(__name__)


# A progress line: ``progress <point> epoch <e>/<n> ...``; ``relulab status`` reads these.
PROGRESS = "progress"


def progress_line(point_id: str, rows: list[dict], epochs: int, seconds_per_epoch: float) -> str:
    """One line per trained epoch, so that ``tail -f`` on a job's log shows where it is.

    ``rows`` are the history's epoch rows; the newest epoch's mean validation accuracy and dead
    fraction over the seeds that have a finite value are shown.
    """
    epoch = max(row["epoch"] for row in rows)
    newest = [row for row in rows if row["epoch"] == epoch]

    def mean(key: str) -> str:
        values = [row[key] for row in newest if math.isfinite(row.get(key, math.nan))]
        return f"{sum(values) / len(values):.3f}" if values else "n/a"

    left = (epochs - epoch) * seconds_per_epoch
    return (
        f"{PROGRESS} {point_id} epoch {epoch}/{epochs}: val_accuracy {mean('val_accuracy')}, "
        f"dead_fraction {mean('dead_fraction')} (mean of {len(newest)} seeds); "
        f"{seconds_per_epoch:.1f} s/epoch, about {left:.0f} s left"
    )


class ProgressLog:
    """Logs ``progress_line`` after every epoch (called by the training's epoch hook)."""

    def __init__(self, point_id: str, epochs: int):
        self.point_id, self.epochs = point_id, epochs
        self.since = time.monotonic()

    def __call__(self, rows: list[dict]) -> None:
        now = time.monotonic()
        log.info(progress_line(self.point_id, rows, self.epochs, now - self.since))
        self.since = now


def varying_axes(study: Study | dict) -> set[str]:
    """The grid axes with more than one value in the study (they name the runs)."""
    points = [point.params() for point in expand(study)]
    return {key for key in points[0] if len({p[key] for p in points}) > 1}


class NonFiniteStartError(ValueError):
    """The untrained network's loss is NaN or infinite: bad data or settings, not divergence."""


class RefuseNonFiniteStart:
    """Stops training before its first epoch if a member's loss is not finite at epoch 0.

    A network diverges by training; one that is non-finite before any step was given bad
    inputs or settings (data with NaN, a precision that overflows), and calling that
    "diverged" would hide the cause. Called with the training's history before each epoch.
    ``labels`` names each member (its grid point), in the model's order.
    """

    def __init__(self, labels: list[str], data_path: str | Path):
        self.labels = labels
        self.data_path = data_path

    def __call__(self, history) -> None:
        bad = sorted(m for m, epoch in history.diverged_epoch.items() if epoch == 0)
        if not bad:
            return
        seeds = [row["seed"] for row in history.epochs if row["epoch"] == 0]
        by_point: dict[str, list[int]] = {}
        for member in bad:
            by_point.setdefault(self.labels[member], []).append(seeds[member])
        where = "; ".join(f"{point}: seed(s) {found}" for point, found in by_point.items())
        raise NonFiniteStartError(
            f"{where}: the loss of the untrained network (epoch 0) is NaN or infinite. That "
            f"is a data or configuration error, not divergence: check the prepared data "
            f"{self.data_path} and the settings that scale the first forward pass "
            "(training.precision, model.init, model.width)"
        )


@contextmanager
def point_lock(out_dir: Path, point_id: str) -> Iterator[bool]:
    """Hold the point's ``training.lock`` while it trains: one process per point at a time.

    A second process (say, a second Snakemake started after ``--unlock`` while the first
    still runs) waits here until the first is done, then yields True ("waited"). The lock
    belongs to the process, so it is gone when the process dies, however it dies.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = paths.training_lock(out_dir)
    with open(lock, "a+") as handle:
        waited = False
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            log.warning(
                "%s is being trained by %s (lock %s); waiting for it to finish",
                point_id,
                holder,
                lock,
            )
            fcntl.flock(handle, fcntl.LOCK_EX)
            waited = True
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
        try:
            yield waited
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tracking_params(point: Point, study: Study | dict) -> dict:
    """The parameters a point's MLflow runs carry."""
    study = study_settings.of(study)
    return {
        **point.params(),
        "point": point.id,
        "dataset": study.data.name,
        "data_seed": study.data.seed,
        "arch": study.model.arch,
        "width": study.model.width,
        "epochs": study.training.epochs,
        "batch_size": study.training.batch_size,
        "weight_decay": study.training.weight_decay,
    }


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no CUDA device is available")
    return torch.device(name)


def training_groups(points: list[Point], study: Study | dict) -> list[list[Point]]:
    """``points`` in the groups that train as one model, in order of their first point.

    MLPs group by ``Point.model_key``; a convolutional network is one network per seed and
    trains its points one at a time.
    """
    if study_settings.of(study).model.arch != "mlp":
        return [[point] for point in points]
    groups: dict[tuple, list[Point]] = {}
    for point in points:
        groups.setdefault(point.model_key(), []).append(point)
    return list(groups.values())


def run_points(
    points: list[Point],
    study: Study | dict,
    data_path: str | Path,
    tracking_uri: str | None,
    root: str | Path = ".",
) -> list[dict]:
    """Train a job's ``points`` (outputs in ``root/results/runs/<point>``), those sharing a
    ``Point.model_key`` as one model; their summaries, in order."""
    study = study_settings.of(study)
    summaries: dict[str, dict] = {}
    for group in training_groups(points, study):
        out_dirs = [Path(root) / paths.run_dir(point.id) for point in group]
        for point, summary in zip(
            group, run_group(group, study, data_path, out_dirs, tracking_uri), strict=True
        ):
            summaries[point.id] = summary
    return [summaries[point.id] for point in points]


def run_point(
    point: Point,
    study: Study | dict,
    data_path: str | Path,
    out_dir: str | Path,
    tracking_uri: str | None,
    perturbed: bool = False,
) -> dict:
    """Train every seed of ``point``; write ``epochs.csv``, ``layers.csv`` and ``point.json``.

    ``tracking_uri=None`` trains without MLflow (used by benchmarks, tests and controls).
    ``perturbed``: the 1-ulp control (``relulab.train.control``): one weight per seed moved by
    one ulp before training. ``run_group`` says the rest.
    """
    return run_group([point], study, data_path, [out_dir], tracking_uri, perturbed)[0]


def run_group(
    points: list[Point],
    study: Study | dict,
    data_path: str | Path,
    out_dirs: list[str | Path],
    tracking_uri: str | None,
    perturbed: bool = False,
) -> list[dict]:
    """Train every seed of ``points`` (one ``Point.model_key``) as one model; each point's outputs
    go to its ``out_dirs`` entry. Returns the points' summaries (``point.json``).

    A point whose outputs are complete and match its fingerprint and seeds is not trained
    again: its ``point.json`` is returned as it is. One process at a time trains a point
    (``point_lock``); one that waited for another to finish a point takes that process's
    outputs instead of training it again.
    """
    study = study_settings.of(study)
    out_dirs = [Path(d) for d in out_dirs]
    dirs = dict(zip((p.id for p in points), out_dirs, strict=True))

    def finished(why: str) -> list[Point]:
        done = [p for p in points if is_finished(p, study, dirs[p.id])]
        for point in done:
            log.info("%s %s; not training it again", point.id, why)
        return done

    done = [] if perturbed else finished("is already finished with these settings")
    todo = [p for p in points if p not in done]
    if todo:
        with ExitStack() as locks:
            waited = any(
                [
                    locks.enter_context(point_lock(dirs[p.id], p.id))
                    for p in sorted(todo, key=lambda p: p.id)
                ]
            )
            if waited and not perturbed:
                meanwhile = finished("was trained by another process meanwhile")
                todo = [p for p in todo if p not in meanwhile]
            if todo:
                _train_group(
                    todo, study, data_path, [dirs[p.id] for p in todo], tracking_uri, perturbed
                )
    return [json.loads((dirs[p.id] / "point.json").read_text()) for p in points]


def group_fingerprint(fingerprints: list[str]) -> str:
    """A group's checkpoint fingerprint: its one point's, or a hash of its points' in order."""
    if len(fingerprints) == 1:
        return fingerprints[0]
    return hashlib.sha256("+".join(fingerprints).encode()).hexdigest()[:16]


def _without_point(rows: list[dict], point_id: str) -> list[dict]:
    """The rows of one point, without the ``point`` column."""
    return [
        {k: v for k, v in row.items() if k != "point"} for row in rows if row["point"] == point_id
    ]


# The log line with a job's time inside MLflow calls (``benchmarks/train_speed.py`` sums them).
TRACKING_TIME = "time inside MLflow calls"


class GroupTracker:
    """Sends each point's rows of a group's history to that point's ``PointTracker``, and
    clocks the time spent inside all of the group's tracking calls (``timed``, ``seconds``)."""

    def __init__(self):
        self.trackers: dict[str, PointTracker] = {}
        self.seconds = 0.0

    @contextmanager
    def timed(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start

    def log_rows(self, epoch_rows: list[dict], layer_rows: list[dict]) -> None:
        with self.timed():
            for point_id, tracker in self.trackers.items():
                tracker.log_rows(
                    _without_point(epoch_rows, point_id), _without_point(layer_rows, point_id)
                )

    def queue_rows(self, epoch_rows: list[dict], layer_rows: list[dict]) -> None:
        with self.timed():
            for point_id, tracker in self.trackers.items():
                tracker.queue_rows(
                    _without_point(epoch_rows, point_id), _without_point(layer_rows, point_id)
                )


class GroupProgress:
    """A ``ProgressLog`` line per point of a group after every epoch."""

    def __init__(self, point_ids: list[str], epochs: int):
        self.logs = {point_id: ProgressLog(point_id, epochs) for point_id in point_ids}

    def __call__(self, rows: list[dict]) -> None:
        for point_id, progress in self.logs.items():
            progress(_without_point(rows, point_id))


@dataclass
class GroupTraining:
    """A group's points built for training: the model (in its Lightning module), the seeds of
    each point, the points' fingerprints and the provenance of the job."""

    points: list[Point]
    out_dirs: list[Path]
    module: SeedStackModule
    seeds: list[int]
    fingerprints: list[str]
    device: torch.device
    provenance: dict[str, str]
    profile: dict[str, int]  # examples in the training and test sets

    @property
    def labels(self) -> list[str]:
        """Each member's point, in the model's order."""
        return self.module.settings.points


def _train_group(
    points: list[Point],
    study: Study,
    data_path: str | Path,
    out_dirs: list[Path],
    tracking_uri: str | None,
    perturbed: bool,
) -> None:
    """``run_group`` once the points' locks are held: build, train, write their outputs."""
    store.set_outage_timeout(study.tracking.timeout_s)
    for out_dir in out_dirs:
        out_dir.mkdir(parents=True, exist_ok=True)
    built = _build_group(points, study, data_path, out_dirs, perturbed)
    group = _train(built, study, data_path, tracking_uri)
    _write_outputs(built, group, tracking_uri, perturbed)


def _build_group(
    points: list[Point],
    study: Study,
    data_path: str | Path,
    out_dirs: list[Path],
    perturbed: bool,
) -> GroupTraining:
    """The model of ``points`` (one ``Point.model_key``), its data and training settings."""
    seeds = list(study.training.seeds)
    training = study.training
    device = resolve_device(training.device)
    first = points[0]
    dtype = weight_dtype(first.precision)
    fingerprints = [fingerprint(point, study) for point in points]
    if perturbed:
        nudge = control.suffix(MIXED.get(first.precision))
        fingerprints = [f"{f}+{nudge}" for f in fingerprints]

    arch = study.model.arch
    split = datasets.load(data_path, flatten=arch == "mlp")
    architecture = {
        "classes": split.classes,
        "width": study.model.width,
        "depth": first.depth,
        "activation": first.activation,
        "zero_grad": first.zero_grad,
        "batch_norm": first.batch_norm,
        "dtype": dtype,
        "device": device,
    }
    members = seeds * len(points)
    if arch == "mlp":
        inits = [point.init for point in points for _ in seeds]
        stack = build_stack(members, in_features=split.in_features, init=inits, **architecture)
    else:
        in_shape = tuple(split.x_train.shape[1:])
        stack = conv_training.build_models(
            members, arch, in_shape=in_shape, init=first.init, **architecture
        )
    made_with = provenance(device)
    loop = Settings(
        seeds=members,
        lr=[point.lr for point in points for _ in seeds],
        epochs=training.epochs,
        batch_size=training.batch_size,
        optimizer=first.optimizer,
        weight_decay=training.weight_decay,
        fingerprint=group_fingerprint(fingerprints),
        points=[point.id for point in points for _ in seeds],
        autocast=MIXED.get(first.precision),
        origin={key: made_with[key] for key in checkpoints.ORIGIN},
    )
    if perturbed:
        control.perturb_one_ulp(stack, compute_dtype=loop.autocast)
    module = SeedStackModule(stack, split.to(device, dtype), loop)
    profile = {"train": len(split.y_train), "test": len(split.y_test)}
    return GroupTraining(points, out_dirs, module, seeds, fingerprints, device, made_with, profile)


def _train(
    built: GroupTraining, study: Study, data_path: str | Path, tracking_uri: str | None
) -> GroupTracker:
    """Resume or start the group's training, tracked in MLflow unless ``tracking_uri`` is None."""
    points, loop = built.points, built.module.settings
    names = ", ".join(point.id for point in points)
    last = paths.checkpoint(built.out_dirs[0])
    held = last.exists()
    done = checkpoints.resumable(last, checkpoints.identity(loop), names)
    group = GroupTracker()
    if tracking_uri is not None:
        if held and done is None:
            _retire_runs(built, study, tracking_uri)
        _start_tracking(built, group, study, data_path, tracking_uri, resumed=done is not None)
    if done is not None:
        log.info("resuming %s after epoch %d from %s", names, done, last)
    else:
        log.info("training %s: %d seeds each, %d epochs", names, len(built.seeds), loop.epochs)
    fit(
        built.module,
        built.device,
        last,
        resume=done is not None,
        tracker=group if group.trackers else None,
        progress=GroupProgress([point.id for point in points], loop.epochs),
        check=RefuseNonFiniteStart(built.labels, data_path),
    )
    return group


def _retire_runs(built: GroupTraining, study: Study, tracking_uri: str) -> None:
    """End the MLflow runs of a checkpoint that is not resumed: their epochs are not the
    networks trained from now on."""
    for point, point_fingerprint in zip(built.points, built.fingerprints, strict=True):
        tracking.retire_point_runs(
            tracking_uri,
            study.tracking.experiment,
            point.id,
            point_fingerprint,
            "its checkpoint was made with other seeds, device or code; trained afresh",
        )


def _start_tracking(
    built: GroupTraining,
    group: GroupTracker,
    study: Study,
    data_path: str | Path,
    tracking_uri: str,
    resumed: bool,
) -> None:
    """Find or create each point's MLflow runs; a resumed job's runs name the code that now
    runs (``tracking.refresh_provenance``)."""
    varying = varying_axes(study)
    for point, point_fingerprint in zip(built.points, built.fingerprints, strict=True):
        with group.timed():
            tracker = PointTracker(
                tracking_uri, study.tracking.experiment, point.id, point_fingerprint
            )
            tracker.start(
                tracking_params(point, study),
                built.seeds,
                built.provenance,
                name=tracking_names.run_name(point.params(), varying),
                dataset=tracking.dataset_entity(study.data.name, data_path, built.profile),
            )
            if resumed or any(epoch >= 0 for epoch in tracker.logged_epochs.values()):
                tracking.refresh_provenance(
                    tracker.client,
                    [tracker.parent_id, *tracker.seed_runs.values()],
                    built.provenance,
                )
        group.trackers[point.id] = tracker


def _write_outputs(
    built: GroupTraining, group: GroupTracker, tracking_uri: str | None, perturbed: bool
) -> None:
    """Each point's ``epochs.csv``, ``layers.csv`` and (last) ``point.json``; close its runs."""
    history = built.module.history
    seeds = built.seeds
    hashes = parameter_hashes(built.module.stack)
    for i, (point, out_dir) in enumerate(zip(built.points, built.out_dirs, strict=True)):
        own = range(i * len(seeds), (i + 1) * len(seeds))
        epoch_rows = _without_point(history.epochs, point.id)
        layer_rows = _without_point(history.layers, point.id)
        rows.write_epochs(epoch_rows, out_dir / "epochs.csv")
        rows.write_layers(layer_rows, out_dir / "layers.csv")
        statuses = seed_status(history, seeds, list(own))
        # The final weights' fingerprint: zero_grad twins are bitwise equal exactly when it is.
        for seed, member in zip(seeds, own, strict=True):
            statuses[seed]["params_sha256"] = hashes[member]
        tracker = group.trackers.get(point.id)
        summary = {
            "point": point.id,
            "params": point.params(),
            "perturbed": perturbed,
            "fingerprint": built.fingerprints[i],
            "seeds": {str(seed): info for seed, info in statuses.items()},
            "provenance": built.provenance,
            "mlflow": {
                "tracking_uri": tracking_uri,
                "parent_run_id": tracker.parent_id if tracker else None,
                "seed_run_ids": {
                    str(s): r for s, r in (tracker.seed_runs if tracker else {}).items()
                },
            },
        }
        if tracker is not None:
            with group.timed():
                tracker.finish(statuses, [out_dir / "epochs.csv", out_dir / "layers.csv"])
        (out_dir / "point.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.rmtree(paths.checkpoint(built.out_dirs[0]).parent, ignore_errors=True)
    if group.trackers:
        log.info("%s: %.2f s for %d points", TRACKING_TIME, group.seconds, len(built.points))
