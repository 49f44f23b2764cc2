"""The study's settings, typed once: what the rest of relulab reads instead of config keys.

``config.validate`` checks a config and fills in its defaults; ``settings.of`` turns the
validated config into frozen objects: the ``Study`` with its ``Data``, the ``GridAxes`` of its
main grid and of each added grid (optimizer-study entries, the depth study), ``Model``,
``Training`` and ``Tracking``. A value keeps the type the config gave it (``weight_decay: 0``
stays the integer 0), so that a point's fingerprint, a hash of its settings, is what it was.
The experiment sections (``bifurcation``, ``born_dead``, ``cost``, ``convergence``,
``twins_control``) are typed in ``Experiments``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _values(value: Any) -> tuple:
    """A config value that is one value or a list of them, as a tuple."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


@dataclass(frozen=True)
class Data:
    name: str  # the dataset: mnist1d, digits, mnist, fashion_mnist, cifar10
    seed: int  # data_seed: MNIST-1D's generation
    folder: str  # data_dir: where downloaded datasets' files are looked for
    accept_unverified: bool


@dataclass(frozen=True)
class GridAxes:
    """One grid's values per axis: every combination is a grid point (``grid.expand``)."""

    activations: tuple[str, ...]
    zero_grads: tuple[float, ...]  # multiplies only with the kinked activations
    lrs: tuple[float, ...]
    optimizers: tuple[str, ...]
    precisions: tuple[str, ...]
    depths: tuple[int, ...]
    batch_norms: tuple[bool, ...]
    inits: tuple[str, ...]


@dataclass(frozen=True)
class Model:
    arch: str  # mlp, cnn or resnet
    width: int


@dataclass(frozen=True)
class Training:
    epochs: int
    batch_size: int
    weight_decay: float
    seeds: tuple[int, ...]
    device: str  # cpu, cuda or auto
    points_per_job: int


@dataclass(frozen=True)
class Tracking:
    experiment: str  # the MLflow experiment: the study's name
    configured_uri: str | None  # tracking_uri; MLFLOW_TRACKING_URI wins (tracking_study)
    timeout_s: float  # how long a job waits for a tracking server that does not answer


@dataclass(frozen=True)
class Experiments:
    """The study's sections beside the training grid, each a copy of its validated keys,
    handed as it is to the script that runs the section (``workflow/scripts``; a Snakemake
    rule's params must pickle, which a read-only mapping does not)."""

    convergence_target: float  # validation accuracy whose first epoch counts as converged
    twins_control: dict[str, Any]
    bifurcation: dict[str, Any]
    born_dead: dict[str, Any]
    cost: dict[str, Any]

    @property
    def control_activations(self) -> tuple[str, ...]:
        """The activations whose f'(0)=0 points get a 1-ulp control ((), when disabled)."""
        if not self.twins_control["enabled"]:
            return ()
        return tuple(self.twins_control["activations"])


@dataclass(frozen=True)
class Study:
    name: str
    data: Data
    main: GridAxes  # the main grid
    optimizer_studies: tuple[GridAxes, ...]  # one per optimizer_study entry
    depth_study: GridAxes | None
    model: Model
    training: Training
    tracking: Tracking
    experiments: Experiments
    max_memory_gb: float | None

    @property
    def added(self) -> tuple[GridAxes, ...]:
        """The grids added to the main one: the optimizer-study entries, then the depth study."""
        return (*self.optimizer_studies, *([self.depth_study] if self.depth_study else []))

    @property
    def grids(self) -> tuple[GridAxes, ...]:
        """The main grid, then the added grids, in the order their points are listed."""
        return (self.main, *self.added)


def _main_axes(config: Mapping) -> GridAxes:
    model, training = config["model"], config["training"]
    return GridAxes(
        activations=tuple(config["activation"]),
        zero_grads=tuple(float(z) for z in config["zero_grad"]),
        lrs=tuple(float(lr) for lr in config["lr"]),
        optimizers=_values(training["optimizer"]),
        precisions=_values(training["precision"]),
        depths=tuple(int(d) for d in _values(model["depth"])),
        batch_norms=tuple(bool(b) for b in _values(model["batch_norm"])),
        inits=_values(model["init"]),
    )


def _optimizer_axes(main: GridAxes, entry: Mapping) -> GridAxes:
    """An ``optimizer_study`` entry: its optimizer, learning rates, activations, zero_grad
    values and precision (if it names one); the other axes as in the main grid."""
    return GridAxes(
        activations=tuple(entry["activation"]),
        zero_grads=tuple(float(z) for z in entry["zero_grad"]),
        lrs=tuple(float(lr) for lr in entry["lr"]),
        optimizers=(entry["optimizer"],),
        precisions=(entry["precision"],) if "precision" in entry else main.precisions,
        depths=main.depths,
        batch_norms=main.batch_norms,
        inits=main.inits,
    )


def _depth_axes(main: GridAxes, study: Mapping | None) -> GridAxes | None:
    """The depth study: its activations, learning rates and zero_grad values at its own depths
    and the main grid's (so the main grid's points are shared, not retrained), its inits (the
    main grid's if it names none); the other axes as in the main grid."""
    if not study or not study.get("enabled", True):
        return None
    return GridAxes(
        activations=tuple(study["activation"]),
        zero_grads=tuple(float(z) for z in study["zero_grad"]),
        lrs=tuple(float(lr) for lr in study["lr"]),
        optimizers=main.optimizers,
        precisions=main.precisions,
        depths=tuple(sorted({*main.depths, *(int(d) for d in study["depth"])})),
        batch_norms=main.batch_norms,
        inits=_values(study["init"]) if "init" in study else main.inits,
    )


def _seeds(value: int | list) -> tuple[int, ...]:
    """``training.seeds``: a count n (seeds 0..n-1) or an explicit list."""
    return tuple(range(value)) if isinstance(value, int) else tuple(int(s) for s in value)


def from_config(config: Mapping) -> Study:
    """The typed settings of a validated config (``config.validate``'s result)."""
    main = _main_axes(config)
    model, training = config["model"], config["training"]
    return Study(
        name=config["study"],
        data=Data(
            name=config["dataset"],
            seed=config["data_seed"],
            folder=config.get("data_dir", "data"),
            accept_unverified=config.get("accept_unverified_data", False),
        ),
        main=main,
        optimizer_studies=tuple(
            _optimizer_axes(main, entry) for entry in config.get("optimizer_study") or []
        ),
        depth_study=_depth_axes(main, config.get("depth_study")),
        model=Model(arch=model["arch"], width=model["width"]),
        training=Training(
            epochs=training["epochs"],
            batch_size=training["batch_size"],
            weight_decay=training["weight_decay"],
            seeds=_seeds(training["seeds"]),
            device=training.get("device", "cpu"),
            points_per_job=training.get("points_per_job", 1),
        ),
        tracking=Tracking(
            experiment=config["study"],
            configured_uri=config.get("tracking_uri"),
            timeout_s=float(config.get("tracking_timeout_s", 30.0)),
        ),
        experiments=Experiments(
            convergence_target=config.get("convergence", {}).get("target_accuracy", 0.6),
            twins_control=copy.deepcopy(dict(config.get("twins_control", {"enabled": False}))),
            bifurcation=copy.deepcopy(dict(config.get("bifurcation", {"enabled": False}))),
            born_dead=copy.deepcopy(dict(config.get("born_dead", {"enabled": False}))),
            cost=copy.deepcopy(dict(config.get("cost", {}))),
        ),
        max_memory_gb=config.get("max_memory_gb"),
    )


def of(study_or_config: Study | Mapping) -> Study:
    """``study_or_config`` as a ``Study``: the public functions take either (a validated config
    as ``relulab.validate_config`` returns it, or its settings)."""
    if isinstance(study_or_config, Study):
        return study_or_config
    return from_config(study_or_config)
