"""The evidence of each claim that is not a training run: the bifurcation of untrained networks,
the f'(0) twins and their 1-ulp controls, gradient flow by depth, cost, born-dead networks,
revival pooled over units, sparsity. Each is read and checked from its table once; a table the
study did not produce is ``NotMeasured`` with its reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from relulab.report import labels
from relulab.report.evidence.runs import Interval
from relulab.report.outcome import NotMeasured
from relulab.report.statistics import wilson_interval
from relulab.study.settings import Study
from relulab.tables import dynamics
from relulab.train.rows import STEP_PREFIX

MACHINE_COLUMNS = ("cpu_model", "cpu_capability", "torch_version", "blas", "threads", "env")


def machine_text(row) -> str:
    """The machine a bitwise or timing number holds on, from the columns that record it."""
    parts = []
    for column in MACHINE_COLUMNS:
        value = row.get(column) if hasattr(row, "get") else None
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            parts.append(f"{column.replace('_', ' ')} {value}")
    return "; ".join(parts) if parts else "not recorded"


def _plain(value):
    """A table cell as a Python value: NaN as None, numpy scalars unwrapped."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def _row(r, axes) -> tuple[tuple[str, object], ...]:
    return tuple((a, _plain(r[a])) for a in axes)


def _missing(table: pd.DataFrame | None, columns, what: str) -> NotMeasured | None:
    if table is None:
        return NotMeasured(f"{what} was not run")
    if table.empty:
        return NotMeasured(f"{what} has no rows")
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise ValueError(f"{what}: columns {absent} missing from its table")
    return None


# -- Q1: untrained networks -----------------------------------------------------------------
@dataclass(frozen=True)
class BifurcationCell:
    precision: str
    width: int
    depth: int
    differ: int
    inits: int
    low: float
    high: float
    pre_activations: float
    machine: str


BIFURCATION_COLUMNS = ("precision", "width", "depth", "differ", "inits", "ci_low", "ci_high")


def bifurcation(table: pd.DataFrame | None) -> tuple[BifurcationCell, ...] | NotMeasured:
    """Every cell measured with the default GEMM path (where the table records the path)."""
    missing = _missing(table, BIFURCATION_COLUMNS, "the bifurcation study")
    if missing is not None:
        return missing
    if "gemm_path" in table:
        table = table[table["gemm_path"] == "default"]
    return tuple(
        BifurcationCell(
            precision=str(r["precision"]),
            width=int(r["width"]),
            depth=int(r["depth"]),
            differ=int(r["differ"]),
            inits=int(r["inits"]),
            low=float(r["ci_low"]),
            high=float(r["ci_high"]),
            pre_activations=float(r.get("pre_activations_per_init", math.nan)),
            machine=machine_text(r),
        )
        for _, r in table.iterrows()
    )


# -- Q1: the bifurcation on two GEMM paths --------------------------------------------------
@dataclass(frozen=True)
class GemmPathCount:
    """One precision's bifurcation on the default GEMM path and on ``other_path``, on the same
    ``inits`` initialisations (summed over the ``architectures`` measured on both): how many
    differ bitwise between f'(0)=0 and f'(0)=1 on each path, and how many on both."""

    precision: str
    other_path: str
    architectures: str
    inits: int
    default_differ: int
    other_differ: int
    shared: int
    machine: str

    @property
    def same_initialisations(self) -> bool:
        """Whether exactly the same initialisations differ on both paths."""
        return self.default_differ == self.other_differ == self.shared


GEMM_PATH_COLUMNS = ("gemm_path", "precision", "width", "depth", "inits", "differ")


def gemm_paths(table: pd.DataFrame | None) -> tuple[GemmPathCount, ...] | NotMeasured:
    """Per precision and other GEMM path, from ``bifurcation_machine.csv`` (default-path rows
    restricted to the cells and initialisations measured on the other path)."""
    missing = _missing(table, GEMM_PATH_COLUMNS, "the bifurcation on a second GEMM path")
    if missing is not None:
        return missing
    from relulab.experiments.gemm_paths import DEFAULT

    default = table[table["gemm_path"] == DEFAULT]
    other = table[table["gemm_path"] != DEFAULT]
    if other.empty or "differ_on_both" not in table:
        return NotMeasured("the bifurcation was measured on the default GEMM path only")
    found = []
    for (path, precision), rows in other.groupby(["gemm_path", "precision"], sort=False):
        cells = rows[["width", "depth"]].drop_duplicates()
        base = default[default["precision"] == precision].merge(cells, on=["width", "depth"])
        found.append(
            GemmPathCount(
                precision=str(precision),
                other_path=str(path),
                architectures=", ".join(f"{int(d)}x{int(w)}" for w, d in cells.itertuples(False)),
                inits=int(base["inits"].sum()),
                default_differ=int(base["differ"].sum()),
                other_differ=int(rows["differ"].sum()),
                shared=int(base["differ_on_both"].sum()),
                machine=machine_text(base.iloc[0]) if len(base) else "not recorded",
            )
        )
    return tuple(found)


# -- Q1: training twins ---------------------------------------------------------------------
@dataclass(frozen=True)
class TwinPoint:
    """One f'(0) != 0 point against its f'(0)=0 twin: accuracy differences (twin minus f'(0)=0)
    of the seeds whose weights parted, and of the 1-ulp controls at the same point."""

    row: tuple[tuple[str, object], ...]
    seeds: int
    departed: int
    differences: tuple[float, ...]
    controls: tuple[float, ...] | NotMeasured

    @property
    def label(self) -> str:
        return labels.label(dict(self.row), [a for a, _ in self.row])


SEED_DIFFERENCE = re.compile(r"seed (\d+): ([+-]?[0-9.]+)")
TWIN_COLUMNS = ("seeds", "departed", "departed_accuracy_differences")


def _differences(cell) -> tuple[float, ...]:
    """Per-seed differences as the twins table stores them (``seed 3: +1.20``, points)."""
    if not isinstance(cell, str):
        return ()
    return tuple(float(v) / 100 for _, v in SEED_DIFFERENCE.findall(cell))


def twins(table: pd.DataFrame | None) -> tuple[TwinPoint, ...] | NotMeasured:
    missing = _missing(table, TWIN_COLUMNS, "the f'(0) twins study")
    if missing is not None:
        return missing
    axes = [a for a in labels.AXES if a in table.columns]
    found = []
    for _, r in table.iterrows():
        control_seeds = int(r.get("control_seeds", 0) or 0)
        controls = (
            _differences(r.get("control_accuracy_differences"))
            if control_seeds
            else NotMeasured("no 1-ulp control was trained at this point")
        )
        found.append(
            TwinPoint(
                row=_row(r, axes),
                seeds=int(r["seeds"]),
                departed=int(r["departed"]),
                differences=_differences(r["departed_accuracy_differences"]),
                controls=controls,
            )
        )
    return tuple(found)


# -- Q3: gradient flow by depth -------------------------------------------------------------
@dataclass(frozen=True)
class GradientRatio:
    """First hidden layer's backward signal over the last one's, geometric mean over seeds."""

    row: tuple[tuple[str, object], ...]
    depth: int
    ratio: Interval
    measure: str

    @property
    def per_layer(self) -> Interval:
        """The factor per layer: the ratio to the power 1/(depth - 1)."""
        k = 1 / max(self.depth - 1, 1)
        r = self.ratio
        return Interval(r.mean**k, r.low**k, r.high**k, r.n)

    def axis(self, name):
        return dict(self.row).get(name)


def gradient(table: pd.DataFrame, depth_ids: set[str]) -> tuple[GradientRatio, ...] | NotMeasured:
    """Layer 1's ratio at each depth-study point (at the smallest lr of each setting)."""
    if table.empty:
        return NotMeasured("no gradients were recorded")
    prefix, measure = "", "backward signal at the pre-activations (RMS of dL/dz)"
    if "ratio_to_last_gmean" not in table or table["ratio_to_last_gmean"].isna().all():
        prefix, measure = "weight_", "weight-gradient norm (dL/dz not measured)"
    chosen = table[table["point"].isin(depth_ids)] if depth_ids else table
    first = chosen[(chosen["layer"] == 1) & (chosen["depth"] >= 2)]
    first = first.dropna(subset=[f"{prefix}ratio_to_last_gmean"])
    if first.empty:
        return NotMeasured("no first-to-last gradient ratio (one hidden layer, or all diverged)")
    axes = [a for a in labels.AXES if a in first.columns]
    seeds = first.get("seeds", pd.Series(0, index=first.index))
    return tuple(
        GradientRatio(
            row=_row(r, axes),
            depth=int(r["depth"]),
            ratio=Interval(
                float(r[f"{prefix}ratio_to_last_gmean"]),
                float(r[f"{prefix}ratio_to_last_low"]),
                float(r[f"{prefix}ratio_to_last_high"]),
                int(seeds.loc[i]) if pd.notna(seeds.loc[i]) else 0,
            ),
            measure=measure,
        )
        for i, r in first.iterrows()
    )


# -- Q3: cost ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostRatio:
    """An activation's time relative to ReLU's, its interval, and the benchmark's verdict
    against its null ("cheaper", "dearer", "same")."""

    activation: str
    ratio: Interval
    verdict: str
    machine: str


@dataclass(frozen=True)
class CostEvidence:
    whole_step: bool
    setting: str
    ratios: tuple[CostRatio, ...]


STEP_COLUMNS = ("activation", "ratio_to_relu", "ratio_low", "ratio_high", "verdict")
VERDICT_WORDS = {"within noise": "same", "same": "same", "cheaper": "cheaper", "dearer": "dearer"}


def cost(step: pd.DataFrame | None, kernel: pd.DataFrame | None) -> CostEvidence | NotMeasured:
    """Whole-step timing where measured (``cost_step.csv``), else the per-element kernel
    timing at its largest size (said so: it is not what training pays)."""
    if step is not None and len(step):
        from relulab.nn import activations

        _missing(step, STEP_COLUMNS, "the whole-step cost benchmark")
        # The claim is about the smooth activations; each optimizer's step is its own setting.
        by_optimizer = "optimizer" in step and step["optimizer"].nunique() > 1
        ratios = tuple(
            CostRatio(
                f"{r['activation']}, {r['optimizer']}" if by_optimizer else str(r["activation"]),
                Interval(
                    float(r["ratio_to_relu"]), float(r["ratio_low"]), float(r["ratio_high"]), 0
                ),
                VERDICT_WORDS.get(str(r["verdict"]), str(r["verdict"])),
                machine_text(r),
            )
            for _, r in step.iterrows()
            if r["activation"] in activations.SMOOTH
        )
        return CostEvidence(True, "a whole training step (forward, backward, optimizer)", ratios)
    missing = _missing(kernel, ("variant", "relative", "elements"), "the cost benchmark")
    if missing is not None:
        return missing
    if "relative_low" not in kernel:
        return NotMeasured("the kernel benchmark timed no null, so no ratio has an interval")
    from relulab.experiments import cost as cost_benchmark
    from relulab.nn import activations

    if "verdict" not in kernel:
        kernel = cost_benchmark.add_verdicts(kernel)
    device = kernel["device"].iloc[0]
    at = kernel[(kernel["device"] == device) & (kernel["elements"] == kernel["elements"].max())]
    smooth = at[at["activation"].isin(activations.SMOOTH)]
    ratios = tuple(
        CostRatio(
            str(r["activation"]),
            Interval(float(r["relative"]), float(r["relative_low"]), float(r["relative_high"]), 0),
            VERDICT_WORDS.get(str(r["verdict"]), str(r["verdict"])),
            machine_text(r) if "cpu_model" in at else f"{device}",
        )
        for _, r in smooth.iterrows()
    )
    setting = (
        f"the activation's forward + backward kernel alone at {int(at['elements'].iloc[0]):,} "
        f"elements on {device} (no whole-step timing: not what a training step pays)"
    )
    return CostEvidence(False, setting, ratios)


# -- Q2: born dead ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BornDeadDepths:
    """Untrained ReLU networks of one init at the narrowest width: the fraction with a dead
    hidden layer at the shallowest and the deepest depth (Wilson intervals)."""

    init: str
    width: int
    networks: int
    shallow: tuple[int, Interval]
    deep: tuple[int, Interval]


BORN_COLUMNS = ("init", "width", "depth", "networks", "network_dead_fraction")


def born_dead(table: pd.DataFrame | None) -> tuple[BornDeadDepths, ...] | NotMeasured:
    missing = _missing(table, BORN_COLUMNS, "the born-dead experiment")
    if missing is not None:
        return missing
    narrow = int(table["width"].min())
    found = []
    for init, rows in table[table["width"] == narrow].groupby("init", sort=False):
        rows = rows.sort_values("depth")
        ends = []
        for r in (rows.iloc[0], rows.iloc[-1]):
            interval = Interval(
                float(r["network_dead_fraction"]),
                float(r["network_dead_ci_low"]),
                float(r["network_dead_ci_high"]),
                int(r["networks"]),
            )
            ends.append((int(r["depth"]), interval))
        found.append(BornDeadDepths(str(init), narrow, int(rows["networks"].iloc[0]), *ends))
    return tuple(found)


# -- Q2: revival ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RevivalCount:
    """Units of one optimizer's ReLU runs that died of ``cause`` in ``layer_group`` and those of
    them alive again at the last epoch, pooled over units (Wilson interval of the share).

    ``died``/``revived`` count death at epoch-end snapshots; ``step_died``/``step_revived`` by
    the step-level definition (dead over a whole epoch's training steps; born dead: over the
    first epoch), or None where the runs did not record it.
    """

    optimizer: str
    cause: str
    layer_group: str
    runs: int
    died: int
    revived: int
    step_died: int | None = None
    step_revived: int | None = None

    @property
    def share(self) -> Interval:
        return _share(self.revived, self.died)

    @property
    def step_share(self) -> Interval | None:
        if self.step_died is None or self.step_revived is None:
            return None
        return _share(self.step_revived, self.step_died)


def _share(revived: int, died: int) -> Interval:
    low, high = wilson_interval(revived, died)
    return Interval(revived / died if died else math.nan, low, high, died)


# Activations whose units can be dead (local derivative 0 on every example): ReLU. Leaky ReLU,
# PReLU and RReLU never have a zero derivative; ELU's and the smooth ones' are zero only by
# underflow, which is saturation, not the dying the claim is about.
CAN_DIE = ("relu",)


def revival(layers: pd.DataFrame | None, epochs: pd.DataFrame, study: Study):
    """Pooled counts per optimizer, cause and layer group, from each counted run's last epoch
    (bitwise f'(0) twins counted once), ReLU only."""
    if layers is None:
        return NotMeasured("the per-layer rows (layers.csv) were not given to the findings")
    from relulab.report.inputs import with_axes

    width = study.model.width
    layers = with_axes(layers, study)
    relu = layers[layers["activation"].isin(CAN_DIE)]
    if relu.empty:
        return NotMeasured("no activation that can die (ReLU) was trained")
    counted = dynamics.distinct_runs(epochs[epochs["point"].isin(set(relu["point"]))])
    keep = counted.loc[counted["counted"], ["point", "seed"]]
    if "final_status" in relu:
        relu = relu[relu["final_status"] != "diverged"]
    ordered = relu.sort_values(["point", "seed", "layer", "epoch"])
    last = ordered.groupby(["point", "seed", "layer"]).tail(1).merge(keep, on=["point", "seed"])
    last = last.assign(layer_group=last["layer"].map(dynamics.layer_group))
    found = []
    for cause, stem in dynamics.CAUSES.items():
        died_column, revived_column = f"{stem}_fraction", f"{stem}_revived_fraction"
        if died_column not in last or revived_column not in last:
            continue
        step_columns = [f"{STEP_PREFIX}{died_column}", f"{STEP_PREFIX}{revived_column}"]
        for (optimizer, group), rows in last.groupby(["optimizer", "layer_group"], sort=True):
            died, revived = (_units(rows[c], width) for c in (died_column, revived_column))
            step_died, step_revived = (
                (_units(rows[c], width) for c in step_columns)
                if _recorded(rows, step_columns)
                else (None, None)
            )
            runs = rows[["point", "seed"]].drop_duplicates().shape[0]
            found.append(
                RevivalCount(
                    str(optimizer), cause, str(group), runs, died, revived, step_died, step_revived
                )
            )
    return tuple(found) if found else NotMeasured("no cause of death was recorded per layer")


def _recorded(rows: pd.DataFrame, columns: list[str]) -> bool:
    """Whether every row has a value in every one of ``columns``."""
    return all(c in rows for c in columns) and bool(rows[columns].notna().all().all())


def _units(fractions: pd.Series, width: int) -> int:
    """Units counted by per-layer fractions of layers ``width`` units wide."""
    return int((fractions * width).round().sum())


# -- Q3: sparsity -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Sparsity:
    point: str
    row: tuple[tuple[str, object], ...]
    sparsity: Interval

    def axis(self, name):
        return dict(self.row).get(name)


def sparsity(death: pd.DataFrame) -> tuple[Sparsity, ...] | NotMeasured:
    if death.empty or "final_sparsity_mean" not in death:
        return NotMeasured("no sparsity was measured")
    death = death.dropna(subset=["final_sparsity_mean"])
    axes = [a for a in labels.AXES if a in death.columns]
    found = []
    for _, r in death.iterrows():
        mean, half = float(r["final_sparsity_mean"]), float(r["final_sparsity_ci95"])
        low = max(0.0, mean - half) if math.isfinite(half) else math.nan
        high = min(1.0, mean + half) if math.isfinite(half) else math.nan
        found.append(
            Sparsity(str(r["point"]), _row(r, axes), Interval(mean, low, high, int(r["seeds"])))
        )
    return tuple(found)
