"""The training grid: activation x zero_grad x lr (x optimizer x precision x depth x batch_norm
x init), and the training jobs that train its unfinished points.

``Point`` is the one definition of the grid's axes (``AXES``): tables, figures and findings take
their columns from it. ``zero_grad`` multiplies only with the kinked activations; each smooth
activation appears once per combination of the other axes. No grid point appears twice. A point's
id names all its values, so it is stable when other values are added to or removed from the grid;
the optimizer appears in it only when it is not plain SGD and the init only when it is not
PyTorch's default, so ids of earlier studies read as before.

A ``depth_study`` in the config adds the points of a second, smaller grid (its activations,
learning rates and depths, every other axis as in the main grid); an ``optimizer_study`` adds, per
entry, an optimizer at its own learning rates (plain SGD needs larger ones than Adam); points they
share with the main grid are trained once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from relulab.nn.kinds import is_kinked
from relulab.study import paths, settings
from relulab.study.settings import GridAxes, Study

POINT_PATTERN = r"[A-Za-z0-9_.+\-]+"


def _number(value: float) -> str:
    """``value`` as it reads in a point id: short (``0.1``, ``1e-05``), yet never ambiguous.

    Six significant digits read best and keep the ids of existing studies, but would give
    0.1 and 0.1000001 one id, and so one point; where they do not name the value exactly, the
    shortest text that does (Python's ``repr``) is used instead.
    """
    value = float(value)
    short = format(value, "g")
    return short if float(short) == value else repr(value)


@dataclass(frozen=True)
class Point:
    activation: str
    zero_grad: float | None
    lr: float
    precision: str
    depth: int
    batch_norm: bool
    optimizer: str = "sgd"
    init: str = "default"

    @property
    def id(self) -> str:
        parts = [self.activation]
        if self.zero_grad is not None:
            parts.append(f"zg{_number(self.zero_grad)}")
        parts.append(f"lr{_number(self.lr)}")
        if self.optimizer != "sgd":
            parts.append(self.optimizer)
        parts += [self.precision, f"d{self.depth}"]
        parts.append("bn" if self.batch_norm else "nobn")
        if self.init != "default":
            parts.append(self.init)
        return "_".join(parts)

    def params(self) -> dict:
        return asdict(self)

    def architecture(self) -> tuple:
        """What decides the network's shape and arithmetic: the axes other than lr, zero_grad
        and optimizer."""
        return (self.activation, self.precision, self.depth, self.batch_norm, self.init)

    def model_key(self) -> tuple:
        """Points that share it train as one stacked model, each with its own learning rate and
        initialisation: the architecture but the init, f'(0) and the optimiser."""
        activation, precision, depth, batch_norm, _ = self.architecture()
        return (activation, precision, depth, batch_norm, self.zero_grad, self.optimizer)


# The grid's axes, in the order tables list them: the one place they are named.
AXES: tuple[str, ...] = tuple(f.name for f in fields(Point))
# The default of each axis that has one (axes added to the grid later).
AXIS_DEFAULTS: dict[str, object] = {
    f.name: f.default for f in fields(Point) if f.default is not dataclasses.MISSING
}
# A table's point columns: the point's id, then every axis.
POINT_COLUMNS: tuple[str, ...] = ("point", *AXES)


def points_of(axes: GridAxes) -> list[Point]:
    """Every point of one grid's axes, in a stable order (each id once)."""
    points: dict[str, Point] = {}
    combinations = itertools.product(
        axes.activations,
        axes.optimizers,
        axes.precisions,
        axes.depths,
        axes.batch_norms,
        axes.inits,
        axes.lrs,
    )
    for activation, optimizer, precision, depth, batch_norm, init, lr in combinations:
        zero_grads = axes.zero_grads if is_kinked(activation) else (None,)
        for zero_grad in zero_grads:
            point = Point(activation, zero_grad, lr, precision, depth, batch_norm, optimizer, init)
            points.setdefault(point.id, point)
    return list(points.values())


def expand(study: Study | dict) -> list[Point]:
    """Every grid point of a study (or of a validated config), in a stable order, without
    duplicates: the main grid's, then those the optimizer and depth studies add."""
    points: dict[str, Point] = {}
    for axes in settings.of(study).grids:
        for point in points_of(axes):
            points.setdefault(point.id, point)
    return list(points.values())


def optimizer_study_points(study: Study | dict) -> list[Point]:
    """The optimizer study's points (those shared with the main grid included)."""
    return [point for axes in settings.of(study).optimizer_studies for point in points_of(axes)]


def depth_study_points(study: Study | dict) -> list[Point]:
    """The depth study's points (those shared with the main grid included); [] without one."""
    deeper = settings.of(study).depth_study
    return points_of(deeper) if deeper is not None else []


def main_grid(study: Study | dict) -> list[Point]:
    """The points of the main grid alone, without the depth and optimizer studies' points."""
    return points_of(settings.of(study).main)


def by_id(study: Study | dict) -> dict[str, Point]:
    return {point.id: point for point in expand(study)}


def is_finished(point: Point, study: Study | dict, run_dir: str | Path | None = None) -> bool:
    """Whether ``point``'s outputs exist and were trained with the current settings and seeds.

    ``run_dir`` defaults to ``results/runs/<point>``. ``point.json`` is written last, so its
    presence means the point finished; its fingerprint and its seeds say whether the settings
    it was trained with are still the study's.
    """
    run_dir = Path(run_dir) if run_dir is not None else paths.run_dir(point.id)
    if not all((run_dir / name).is_file() for name in paths.POINT_FILES):
        return False
    try:
        summary = json.loads((run_dir / "point.json").read_text())
    except (OSError, ValueError):
        return False
    study = settings.of(study)
    expected_seeds = sorted(str(seed) for seed in study.training.seeds)
    return (
        summary.get("fingerprint") == fingerprint(point, study)
        and sorted(summary.get("seeds", {})) == expected_seeds
    )


def jobs(study: Study | dict, points: list[Point] | None = None) -> dict[str, list[Point]]:
    """Training jobs for ``points`` (default: every grid point), ``training.points_per_job`` at
    most each, named by what they train.

    Points that train as one model (``Point.model_key``: the same architecture but the init,
    f'(0) and optimiser) stay together in a job where they fit; these groups are packed into
    jobs largest first. The workflow passes the unfinished points only, so that neither adding
    grid values nor changing ``points_per_job`` ever moves a finished point into a new job.
    """
    study = settings.of(study)
    points = expand(study) if points is None else list(points)
    per_job = study.training.points_per_job
    groups: dict[tuple, list[Point]] = {}
    for point in points:
        groups.setdefault(point.model_key(), []).append(point)
    pieces = [
        members[i : i + per_job]
        for members in groups.values()
        for i in range(0, len(members), per_job)
    ]
    bins: list[list[Point]] = []
    for piece in sorted(pieces, key=len, reverse=True):
        home = next((b for b in bins if len(b) + len(piece) <= per_job), None)
        if home is None:
            bins.append(list(piece))
        else:
            home.extend(piece)
    order = {point.id: i for i, point in enumerate(points)}
    bins = [sorted(b, key=lambda p: order[p.id]) for b in bins]
    bins.sort(key=lambda b: order[b[0].id])
    named: dict[str, list[Point]] = {}
    for members in bins:
        name = job_name(members, points)
        unique, k = name, 2
        while unique in named:
            unique, k = f"{name}-{k}", k + 1
        named[unique] = members
    return named


def unfinished_jobs(study: Study | dict, root: str | Path = ".") -> dict[str, list[Point]]:
    """``jobs(config)``, each job left with its points not finished under ``root``; jobs with
    none left are dropped.

    The jobs are dealt from the whole grid, so their names and members depend on the config
    alone: a SLURM job's node, reading the workflow again while other jobs finish, finds its
    job as the submitting machine planned it.
    """
    study = settings.of(study)
    left = {}
    for name, members in jobs(study).items():
        todo = [p for p in members if not is_finished(p, study, Path(root) / paths.run_dir(p.id))]
        if todo:
            left[name] = todo
    return left


def job_name(members: list[Point], grid: list[Point]) -> str:
    """A readable name for a job: its point's id alone, or the architectures it trains.

    Only the architecture axes that vary in ``grid`` are named (``relu-d6+tanh-d6``); more than
    three architectures read ``relu+elu+2more``; the point count follows (``_6pts``).
    """
    if len(members) == 1:
        return members[0].id
    varying = [i for i in range(1, 5) if len({p.architecture()[i] for p in grid}) > 1]
    labels: list[str] = []
    for point in members:
        arch = point.architecture()
        parts = [arch[0]]
        for i in varying:
            value = arch[i]
            parts.append({2: f"d{value}", 3: "bn" if value else "nobn"}.get(i, str(value)))
        label = "-".join(parts)
        if label not in labels:
            labels.append(label)
    if len(labels) > 3:
        labels = [*labels[:2], f"{len(labels) - 2}more"]
    return re.sub(r"[^A-Za-z0-9_.+\-]", "_", "+".join(labels)) + f"_{len(members)}pts"


def fingerprint(point: Point, study: Study | dict) -> str:
    """A short hash of everything that determines a point's training, seeds excluded."""
    study = settings.of(study)
    # The init is stated as a model setting, as it was before it became an axis, so that the
    # fingerprints of earlier studies' points stay as they were.
    point_params = {k: v for k, v in point.params().items() if k != "init"}
    training = study.training
    described = {
        "point": point_params,
        "dataset": study.data.name,
        "data_seed": study.data.seed,
        "model": {"arch": study.model.arch, "width": study.model.width, "init": point.init},
        "training": {
            "epochs": training.epochs,
            "batch_size": training.batch_size,
            "weight_decay": training.weight_decay,
        },
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
