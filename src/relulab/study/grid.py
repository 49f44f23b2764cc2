"""The training grid: activation x zero_grad x lr (x optimizer x precision x depth x batch_norm).

``zero_grad`` multiplies only with the kinked activations; each smooth activation appears once
per combination of the other axes. No grid point appears twice. A point's id names all its
values, so it is stable when other values are added to or removed from the grid; the optimizer
appears in it only when it is not plain SGD, so ids of SGD studies read as before.

A ``depth_study`` in the config adds the points of a second, smaller grid (its activations,
learning rates and depths, every other axis as in the main grid); points it shares with the main
grid are trained once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass

from relulab.nn.activations import is_kinked
from relulab.study.config import as_list

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
        return "_".join(parts)

    def params(self) -> dict:
        return asdict(self)


def expand(config: dict) -> list[Point]:
    """Every grid point of a validated config, in a stable order, without duplicates."""
    points: list[Point] = []
    seen: set[str] = set()
    axes = itertools.product(
        config["activation"],
        as_list(config["training"]["optimizer"]),
        as_list(config["training"]["precision"]),
        as_list(config["model"]["depth"]),
        as_list(config["model"]["batch_norm"]),
        config["lr"],
    )
    for activation, optimizer, precision, depth, batch_norm, lr in axes:
        zero_grads = [float(z) for z in config["zero_grad"]] if is_kinked(activation) else [None]
        for zero_grad in zero_grads:
            point = Point(
                activation,
                zero_grad,
                float(lr),
                precision,
                int(depth),
                bool(batch_norm),
                optimizer,
            )
            if point.id not in seen:
                seen.add(point.id)
                points.append(point)
    for point in depth_study_points(config):
        if point.id not in seen:
            seen.add(point.id)
            points.append(point)
    return points


def depth_study(config: dict) -> dict | None:
    """The depth study as a config of its own, or ``None`` when there is none.

    Its activations, learning rates and zero_grad values at its own depths and at the main
    grid's depths (so the main grid's points are shared, not retrained); everything else as in
    ``config``.
    """
    study = config.get("depth_study")
    if not study or not study.get("enabled", True):
        return None
    depths = sorted({*as_list(config["model"]["depth"]), *study["depth"]})
    return {
        **config,
        "activation": study["activation"],
        "lr": study["lr"],
        "zero_grad": study["zero_grad"],
        "model": {**config["model"], "depth": depths},
        "depth_study": None,
    }


def depth_study_points(config: dict) -> list[Point]:
    """The depth study's points (those shared with the main grid included); [] without one."""
    deeper = depth_study(config)
    return expand(deeper) if deeper is not None else []


def main_grid(config: dict) -> list[Point]:
    """The points of the main grid alone, without the depth study's extra points."""
    return expand({**config, "depth_study": None})


def by_id(config: dict) -> dict[str, Point]:
    return {point.id: point for point in expand(config)}


def batches(config: dict) -> dict[str, list[Point]]:
    """The grid's points shared out over training jobs, ``training.points_per_job`` at most each.

    Points are dealt out in turn (the first to job 1, the second to job 2, ...), so every job
    gets a similar mix of cheap and expensive points and the jobs finish at similar times. A job
    of one point is named after it; otherwise ``batch<i>of<n>``.
    """
    points = expand(config)
    per_job = config["training"].get("points_per_job", 1)
    count = -(-len(points) // per_job)
    if per_job == 1:
        return {point.id: [point] for point in points}
    return {f"batch{i + 1}of{count}": points[i::count] for i in range(count)}


def fingerprint(point: Point, config: dict) -> str:
    """A short hash of everything that determines a point's training, seeds excluded."""
    settings = {
        "point": point.params(),
        "dataset": config["dataset"],
        "data_seed": config["data_seed"],
        "model": {k: v for k, v in config["model"].items() if k not in ("depth", "batch_norm")},
        "training": {
            k: v
            for k, v in config["training"].items()
            if k not in ("optimizer", "precision", "seeds", "device", "points_per_job")
        },
    }
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
