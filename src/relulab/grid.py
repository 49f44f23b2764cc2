"""The training grid: activation x zero_grad x lr (x precision x depth x batch_norm).

``zero_grad`` multiplies only with the kinked activations; each smooth activation appears once
per combination of the other axes. No grid point appears twice. A point's id names all its
values, so it is stable when other values are added to or removed from the grid.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass

from relulab.activations import is_kinked
from relulab.config import as_list

POINT_PATTERN = r"[A-Za-z0-9_.+\-]+"


def _number(value: float) -> str:
    return format(float(value), "g")


@dataclass(frozen=True)
class Point:
    activation: str
    zero_grad: float | None
    lr: float
    precision: str
    depth: int
    batch_norm: bool

    @property
    def id(self) -> str:
        parts = [self.activation]
        if self.zero_grad is not None:
            parts.append(f"zg{_number(self.zero_grad)}")
        parts += [f"lr{_number(self.lr)}", self.precision, f"d{self.depth}"]
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
        as_list(config["training"]["precision"]),
        as_list(config["model"]["depth"]),
        as_list(config["model"]["batch_norm"]),
        config["lr"],
    )
    for activation, precision, depth, batch_norm, lr in axes:
        zero_grads = [float(z) for z in config["zero_grad"]] if is_kinked(activation) else [None]
        for zero_grad in zero_grads:
            point = Point(activation, zero_grad, float(lr), precision, int(depth), bool(batch_norm))
            if point.id not in seen:
                seen.add(point.id)
                points.append(point)
    return points


def by_id(config: dict) -> dict[str, Point]:
    return {point.id: point for point in expand(config)}


def fingerprint(point: Point, config: dict) -> str:
    """A short hash of everything that determines a point's training, seeds excluded."""
    settings = {
        "point": point.params(),
        "dataset": config["dataset"],
        "data_seed": config["data_seed"],
        "model": {k: v for k, v in config["model"].items() if k not in ("depth", "batch_norm")},
        "training": {
            k: v for k, v in config["training"].items() if k not in ("precision", "seeds", "device")
        },
    }
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
