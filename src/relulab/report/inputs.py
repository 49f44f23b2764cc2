"""What the findings read: the study's tables, and the findings' own building blocks.

Tables a study does not produce (the ReLU'(0) tables, the cost benchmark) are ``None``; the
evidence layer turns each into an explicit "not measured" with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from relulab.study import paths
from relulab.study.settings import Study


def _relative(path: Path) -> str:
    """A results/ path as the findings (which live in results/) link to it."""
    return str(path.relative_to(paths.RESULTS))


# Where each table and figure lives, relative to results/ (the findings file's folder).
SOURCES = {
    "summary": _relative(paths.table("summary", "html")),
    "death": _relative(paths.table("death", "html")),
    "revival": _relative(paths.table("revival", "html")),
    "gradient": _relative(paths.table("gradient_flow", "html")),
    "convergence": _relative(paths.table("convergence", "html")),
    "best_lr": _relative(paths.table("convergence_best_lr", "html")),
    "revival_pooled": _relative(paths.table("revival_pooled", "html")),
    "born_dead": _relative(paths.table("born_dead", "html")),
    "born_dead_figure": _relative(paths.figure("born_dead", "png")),
    "cost": _relative(paths.table("cost", "html")),
    "bifurcation": _relative(paths.table("bifurcation", "html")),
    "bifurcation_machine": _relative(paths.table("bifurcation_machine", "html")),
    "zero_grad_effect": _relative(paths.table("zero_grad_effect", "html")),
    "epochs": _relative(paths.table("epochs", "csv")),
    "death_over_time": _relative(paths.figure("death_over_time", "png")),
    "death_by_layer": _relative(paths.figure("death_by_layer", "png")),
    "dead_heatmap": _relative(paths.figure("dead_heatmap", "png")),
    "gradient_by_depth": _relative(paths.figure("gradient_by_depth", "png")),
    "convergence_figure": _relative(paths.figure("convergence", "png")),
    "cost_figure": _relative(paths.figure("cost", "png")),
}


@dataclass(frozen=True)
class Finding:
    """One sentence, the tables it rests on, and the labels of the items it lists (each
    names every axis that varies among them, so no two are alike)."""

    text: str
    sources: tuple[str, ...] = ()
    items: tuple[str, ...] = ()


@dataclass
class Section:
    title: str
    anchor: str = ""
    findings: list[Finding] = field(default_factory=list)
    table: pd.DataFrame | None = None
    # Further tables, each with a caption, shown after ``table``.
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)

    def add(self, text: str, *sources: str, items=()) -> None:
        self.findings.append(
            Finding(text, tuple(SOURCES[s] for s in sources), tuple(str(i) for i in items))
        )


@dataclass
class Inputs:
    """The study's tables; ``None`` for one the study did not produce."""

    summary: pd.DataFrame
    death: pd.DataFrame
    revival: pd.DataFrame
    gradient: pd.DataFrame
    convergence: pd.DataFrame
    epochs: pd.DataFrame
    main_ids: set[str]
    depth_ids: set[str]
    study: Study  # the study's settings
    cost: pd.DataFrame | None = None
    cost_step: pd.DataFrame | None = None
    bifurcation: pd.DataFrame | None = None
    bifurcation_rates: pd.DataFrame | None = None
    bifurcation_machine: pd.DataFrame | None = None
    zero_grad_effect: pd.DataFrame | None = None
    best_lr: pd.DataFrame | None = None
    revival_pooled: pd.DataFrame | None = None
    born_dead: pd.DataFrame | None = None
    layers: pd.DataFrame | None = None


def read_table(path: str | Path) -> pd.DataFrame:
    """A table the workflow wrote; one with no rows (say, every run diverged) is empty, not an
    error."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def read_optional(path: str | Path | None) -> pd.DataFrame | None:
    if path is None or not Path(path).exists():
        return None
    return read_table(path)


def main_points(frame: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    return frame[frame["point"].isin(inputs.main_ids)]


def breadth(frame: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """Every point but the depth study's own: the main grid and the optimizer study."""
    return frame[~frame["point"].isin(inputs.depth_ids - inputs.main_ids)]


def with_axes(frame: pd.DataFrame, study: Study) -> pd.DataFrame:
    """``frame`` with every grid axis as a column, from the study's main grid where a table has
    none (the axis's one value there; None where the main grid varies it)."""
    defaults = {
        "optimizer": _one(study.main.optimizers),
        "precision": _one(study.main.precisions),
        "init": _one(study.main.inits),
        "batch_norm": _one(study.main.batch_norms),
        "depth": _one(study.main.depths),
    }
    missing = {k: v for k, v in defaults.items() if k not in frame.columns and v is not None}
    return frame.assign(**missing) if missing and len(frame.columns) else frame


def _one(values: tuple):
    return values[0] if len(values) == 1 else None


def from_results(results: str | Path, study: Study) -> Inputs:
    """The inputs of a finished study's ``results/`` folder (its settings), as the
    workflow gives them: to rebuild the findings of a study without rerunning anything."""
    from relulab.study import grid

    tables = Path(results) / "tables"
    optional = (
        "cost",
        "cost_step",
        "bifurcation",
        "bifurcation_rates",
        "bifurcation_machine",
        "zero_grad_effect",
        "born_dead",
    )
    return Inputs(
        summary=read_table(tables / "summary.csv"),
        death=read_table(tables / "death.csv"),
        revival=read_table(tables / "revival.csv"),
        gradient=read_table(tables / "gradient_flow.csv"),
        convergence=read_table(tables / "convergence.csv"),
        epochs=read_table(tables / "epochs.csv"),
        layers=read_table(tables / "layers.csv"),
        best_lr=read_table(tables / "convergence_best_lr.csv"),
        revival_pooled=read_table(tables / "revival_pooled.csv"),
        main_ids={p.id for p in grid.main_grid(study)},
        depth_ids={p.id for p in grid.depth_study_points(study)},
        study=study,
        **{name: read_optional(tables / f"{name}.csv") for name in optional},
    )
