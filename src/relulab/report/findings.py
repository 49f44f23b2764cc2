"""The findings report: each question of the study answered in sentences built from its numbers.

Every sentence is computed from the study's tables (no sentence is written in advance), and
names the table or figure it rests on, as a path relative to ``results/``. Tables that a study
does not produce (the ReLU'(0) tables, the cost benchmark) are optional: their section then
says what is missing and falls back on what the training tables show.
"""

from __future__ import annotations

import hashlib
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from relulab.experiments import bifurcation as bifurcation_experiment
from relulab.experiments import cost as cost_benchmark
from relulab.nn import activations
from relulab.study import paths
from relulab.tables import convergence

CLAIMED_DEAD = 0.40  # CS231n: "as much as 40 % of your network can be dead"


# Where each table and figure lives, relative to results/ (the findings file's folder).
def _relative(path: Path) -> str:
    """A results/ path as the findings (which live in results/) link to it."""
    return str(path.relative_to(paths.RESULTS))


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
    "zero_grad_effect": _relative(paths.table("zero_grad_effect", "html")),
    "epochs": _relative(paths.table("epochs", "csv")),
    "death_over_time": _relative(paths.figure("death_over_time", "png")),
    "death_by_layer": _relative(paths.figure("death_by_layer", "png")),
    "dead_heatmap": _relative(paths.figure("dead_heatmap", "png")),
    "gradient_by_depth": _relative(paths.figure("gradient_by_depth", "png")),
    "convergence_figure": _relative(paths.figure("convergence", "png")),
    "cost_figure": _relative(paths.figure("cost", "png")),
}


@dataclass
class Finding:
    text: str
    sources: tuple[str, ...] = ()


@dataclass
class Section:
    title: str
    findings: list[Finding] = field(default_factory=list)
    table: pd.DataFrame | None = None
    # Further tables, each with a caption, shown after ``table``.
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)

    def add(self, text: str, *sources: str) -> None:
        self.findings.append(Finding(text, tuple(SOURCES[s] for s in sources)))


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
    config: dict
    cost: pd.DataFrame | None = None
    bifurcation: pd.DataFrame | None = None
    zero_grad_effect: pd.DataFrame | None = None
    best_lr: pd.DataFrame | None = None
    revival_pooled: pd.DataFrame | None = None
    born_dead: pd.DataFrame | None = None


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


# -- formatting -------------------------------------------------------------------------------
def pct(value: float, digits: int = 1) -> str:
    """A percentage; one that rounds to 0 but is not 0 keeps two significant digits."""
    if value is None or not math.isfinite(value):
        return "n/a"
    shown = f"{100 * value:.{digits}f}"
    if value != 0 and float(shown) == 0:
        shown = f"{100 * value:.2g}"
    return f"{shown} %"


def pct_ci(mean: float, half: float) -> str:
    if half is None or not math.isfinite(half):
        return pct(mean)
    return f"{pct(mean)} (± {100 * half:.1f})"


def num(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}"


def ratio(value: float) -> str:
    """A multiple such as ``1.3×`` or ``45×``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value < 10:
        return f"{value:.2f}×"
    return f"{value:.0f}×" if value < 10_000 else f"{value:.1e}×"


def hidden(depth: int) -> str:
    return f"{int(depth)} hidden layer" + ("" if int(depth) == 1 else "s")


def points(count: int) -> str:
    return f"{count} grid point" + ("" if count == 1 else "s")


def where(row: pd.Series, depth: bool = True) -> str:
    text = f"lr {row['lr']:g}"
    if depth:
        text += f", {hidden(row['depth'])}"
    return text


def listing(items: list[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _main(frame: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    return frame[frame["point"].isin(inputs.main_ids)]


def _breadth(frame: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """Every point but the depth study's own: the main grid and the optimizer study."""
    return frame[~frame["point"].isin(inputs.depth_ids - inputs.main_ids)]


def _kinked(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["activation"].isin(activations.KINKED)]


# -- the study -------------------------------------------------------------------------------
def _used(frame: pd.DataFrame, key: str, inputs: Inputs, names: dict) -> str:
    """The values of a setting the study trained with, in words (from the config if no column)."""
    values = list(dict.fromkeys(frame[key])) if key in frame and len(frame) else []
    values = values or [_configured(inputs, key)]
    return listing([str(names.get(v, v)) for v in values])


def study_section(inputs: Inputs) -> Section:
    c = inputs.config
    section = Section("The study")
    seeds = int(inputs.summary["seeds"].max()) if len(inputs.summary) else 0
    depths = sorted(inputs.summary["depth"].unique())
    text = (
        f"Study `{c.get('study')}` on {c.get('dataset')}: MLPs of width {c['model']['width']} "
        f"with {listing([str(d) for d in depths])} hidden layers, trained with "
        f"{_used(inputs.summary, 'optimizer', inputs, OPTIMIZER_NAMES)}, "
        f"{_used(inputs.summary, 'init', inputs, INIT_NAMES)} and "
        f"{'batch norm' if _configured(inputs, 'batch_norm') is True else 'no batch norm'} "
        f"for {c['training']['epochs']} epochs (batch "
        f"{c['training']['batch_size']}), {len(inputs.summary)} grid points "
        f"({len(inputs.depth_ids - inputs.main_ids)} of them from the depth study) with "
        f"{seeds} seeds each. Every number below is a mean over seeds with its 95 % interval "
        "half-width in brackets."
    )
    section.add(text, "summary")
    diverged = int(inputs.summary["diverged"].sum())
    total = int(inputs.summary["seeds"].sum())
    if diverged:
        worst = inputs.summary[inputs.summary["diverged"] > 0]
        names = listing(sorted({f"{r.variant} at lr {r.lr:g}" for r in worst.itertuples()}))
        section.add(
            f"{diverged} of {total} runs diverged (loss NaN or infinite): {names}. They are "
            "counted in the tables and left out of every mean.",
            "summary",
        )
    else:
        section.add(f"None of the {total} runs diverged.", "summary")
    return section


# -- Q1 ---------------------------------------------------------------------------------------
# Bertoin et al. (NeurIPS 2021), 3-hidden-layer MLP of width 256 on MNIST: the fraction of
# initialisations whose gradient differs between ReLU'(0)=0 and ReLU'(0)=1, at their exposure.
PUBLISHED_BIFURCATION = {p.precision: p for p in bifurcation_experiment.PAPER_POINTS}
PRECISION_ORDER = bifurcation_experiment.PRECISIONS


def q1_section(inputs: Inputs) -> Section:
    section = Section("Q1. Does the value autograd uses for ReLU'(0) matter?")
    table = inputs.bifurcation if inputs.bifurcation is not None else pd.DataFrame()
    twins = inputs.zero_grad_effect if inputs.zero_grad_effect is not None else pd.DataFrame()
    if len(table):
        bifurcation_findings(section, table)
    else:
        section.add("The bifurcation study was not run (``bifurcation.enabled`` is false).")
    if len(twins):
        twin_findings(section, twins, inputs.config)
    else:
        exact_zero_findings(section, inputs.epochs)
    answer_findings(section, table, twins, inputs.config)
    return section


def millions(count: float) -> str:
    """A count of pre-activations: ``46.1 M`` or ``4.4 G``."""
    if count >= 1e9:
        return f"{count / 1e9:.3g} G"
    return f"{count / 1e6:.3g} M"


def reference_cells(table: pd.DataFrame) -> pd.DataFrame:
    """The cells closest to the paper's setting: 3x256 if measured, else the widest of the
    deepest networks; one row per precision, widest to narrowest."""
    width, depth = bifurcation_experiment.PAPER_ARCHITECTURE
    cells = table[(table["width"] == width) & (table["depth"] == depth)]
    if cells.empty:
        deepest = table[table["depth"] == table["depth"].max()]
        cells = deepest[deepest["width"] == deepest["width"].max()]
    order = {p: i for i, p in enumerate(PRECISION_ORDER)}
    return cells.sort_values("precision", key=lambda c: c.map(order)).drop_duplicates("precision")


def bifurcation_setting(row) -> str:
    """Where a bifurcation number was measured: data, exposure and device."""
    examples = int(row.pre_activations_per_init // (row.width * row.depth))
    inputs = getattr(row, "inputs", "standardised")
    device = getattr(row, "device", "cpu")
    return (
        f"{hidden(row.depth)} of {int(row.width)} on {row.dataset} ({inputs} inputs, "
        f"{examples:,} examples: {millions(row.pre_activations_per_init)} pre-activations per "
        f"initialisation), {device}"
    )


def rate_text(row) -> str:
    """The exact-zero rate with its Garwood interval, or its bound when none was seen."""
    total = row.pre_activations_per_init * row.inits
    if row.exact_zeros == 0:
        return (
            f"no pre-activation was exactly 0 in {millions(total)} computed (rate < "
            f"{num(row.exact_zero_rate_ci_high, 2)} per pre-activation, 95 %)"
        )
    return (
        f"{int(row.exact_zeros)} pre-activations were exactly 0, a rate of "
        f"{num(row.exact_zero_rate, 2)} per pre-activation [{num(row.exact_zero_rate_ci_low, 2)}, "
        f"{num(row.exact_zero_rate_ci_high, 2)}] (Garwood 95 %), which predicts "
        f"{pct(row.predicted_fraction_differ, 0)} at this exposure"
    )


def bifurcation_findings(section: Section, table: pd.DataFrame) -> None:
    """Untrained networks: how often f'(0) changes a gradient, at which exposure, and the
    rate that carries the answer to the paper's exposure."""
    for row in reference_cells(table).itertuples():
        section.add(
            f"{row.precision}, {bifurcation_setting(row)}: {int(row.differ)} of {int(row.inits)} "
            f"initialisations ({pct(row.fraction_differ, 0)} [{pct(row.ci_low, 0)}, "
            f"{pct(row.ci_high, 0)}], Wilson 95 %) had a mini-batch gradient differ bitwise "
            f"between f'(0)=0 and f'(0)=1; {rate_text(row)}.",
            "bifurcation",
        )
        paper = PUBLISHED_BIFURCATION.get(row.precision)
        if paper is None:
            continue
        n = paper.pre_activations_per_init
        predicted = [
            bifurcation_experiment.predicted_fraction(r, n)
            for r in (row.exact_zero_rate, row.exact_zero_rate_ci_low, row.exact_zero_rate_ci_high)
        ]
        section.add(
            f"At the paper's exposure ({paper.dataset}, {paper.device}, {paper.depth}x"
            f"{paper.width}: {millions(n)} pre-activations per initialisation) our {row.precision}"
            f" rate predicts {pct(predicted[0], 0)} [{pct(predicted[1], 0)}, "
            f"{pct(predicted[2], 0)}]; {paper.source} report {pct(paper.fraction_differ, 0)}.",
            "bifurcation",
        )
    float32 = table[table["precision"] == "float32"]
    if len(float32) > 1:
        sizes = [
            f"{pct(r.fraction_differ, 0)} at {int(r.depth)}x{int(r.width)} "
            f"({millions(r.pre_activations_per_init)})"
            for r in float32.sort_values("pre_activations_per_init").itertuples()
        ]
        seen = float32[float32["exact_zeros"] > 0]
        rates = (
            f"; the rate per pre-activation ranged from {num(seen['exact_zero_rate'].min(), 2)} "
            f"to {num(seen['exact_zero_rate'].max(), 2)} across these networks"
            if len(seen) > 1
            else ""
        )
        section.add(
            f"In float32 on {listing(sorted(set(float32['dataset'])))}, by exposure "
            f"(pre-activations per initialisation): {listing(sizes)}{rates}.",
            "bifurcation",
        )


def _departed_text(rows: pd.DataFrame) -> str:
    listed = [str(v) for v in rows.get("departed_accuracy_differences", []) if isinstance(v, str)]
    listed = [v for v in listed if v]
    return f" (final accuracy, points: {'; '.join(listed)})" if listed else ""


def twin_findings(section: Section, table: pd.DataFrame, config: dict | None = None) -> None:
    """Training: runs that differ only in f'(0), whether they parted, by how much each one
    that parted moved, and how much a 1-ulp change of one weight moves the same seeds."""
    config = config or {}
    training = config.get("training", {})
    where_trained = (
        f"{config.get('dataset', 'the data set')}, {training.get('epochs', '?')} epochs, "
        f"device {training.get('device', 'cpu')}"
    )
    order = {p: i for i, p in enumerate(PRECISION_ORDER)}
    for precision, rows in sorted(
        table.groupby("precision"), key=lambda item: order.get(item[0], len(order))
    ):
        seeds, departed = int(rows["seeds"].sum()), int(rows["departed"].sum())
        text = (
            f"In {precision} training ({where_trained}), {departed} of {seeds} runs with f'(0) "
            f"other than 0 parted from their f'(0)=0 twin (same seed, same data order)"
        )
        if departed:
            parted = rows[rows["departed"] > 0]
            names = listing(sorted({f"{r.variant} at lr {r.lr:g}" for r in parted.itertuples()}))
            text += f", in {names}{_departed_text(parted)}"
        section.add(text + ".", "zero_grad_effect")
        controlled = rows[rows.get("control_seeds", pd.Series(0, index=rows.index)) > 0]
        if len(controlled):
            section.add(
                f"The 1-ulp controls of the same {precision} seeds (f'(0)=0, one weight one unit "
                f"in the last place up at the start) ended with weights unlike their "
                f"unperturbed run in {pct(controlled['control_fraction_departed'].mean(), 0)}"
                f" of cases and moved final accuracy by up to "
                f"{100 * controlled['control_accuracy_difference_max_abs'].max():.2f} points "
                f"(mean {100 * controlled['control_accuracy_difference_mean'].mean():+.2f}).",
                "zero_grad_effect",
            )


def answer_findings(
    section: Section, table: pd.DataFrame, twins: pd.DataFrame, config: dict | None
) -> None:
    """One answer sentence per precision, from the bifurcation and the twins."""
    cells = reference_cells(table) if len(table) else pd.DataFrame(columns=["precision"])
    precisions = set(cells["precision"]) | (set(twins["precision"]) if len(twins) else set())
    order = {p: i for i, p in enumerate(PRECISION_ORDER)}
    for precision in sorted(precisions, key=lambda p: order.get(p, len(order))):
        parts = []
        cell = cells[cells["precision"] == precision]
        if len(cell):
            row = next(cell.itertuples())
            exposure = f"{millions(row.pre_activations_per_init)} pre-activations ({row.dataset})"
            if row.differ:
                parts.append(
                    f"f'(0) changes some gradient of an untrained {int(row.depth)}x"
                    f"{int(row.width)} MLP in {pct(row.fraction_differ, 0)} of initialisations "
                    f"at {exposure} on {row.device}"
                )
            else:
                parts.append(
                    f"f'(0) changed no gradient of an untrained {int(row.depth)}x{int(row.width)}"
                    f" MLP in {int(row.inits)} initialisations at {exposure} on {row.device}"
                )
        rows = twins[twins["precision"] == precision] if len(twins) else twins
        if len(rows):
            parts.append(_training_answer(rows))
        section.add(
            f"Answer for {precision}: {'; '.join(parts)}.",
            *(["bifurcation"] if len(cell) else []),
            *(["zero_grad_effect"] if len(rows) else []),
        )


def _training_answer(rows: pd.DataFrame) -> str:
    """Whether f'(0) mattered in training, set against the 1-ulp control where there is one."""
    departed = int(rows["departed"].sum())
    if departed == 0:
        return "in training no run met an exact zero that changed its weights, so it did not matter"
    twin_max = rows.get("departed_accuracy_difference_max_abs", pd.Series(dtype=float)).max()
    control_max = rows.get("control_accuracy_difference_max_abs", pd.Series(dtype=float)).max()
    if not (isinstance(control_max, float) and math.isfinite(control_max)):
        return f"in training {departed} runs parted from their twin (no 1-ulp control to compare)"
    if not math.isfinite(twin_max) or twin_max <= control_max:
        return (
            f"in training {departed} runs parted from their twin, and moved final accuracy no "
            f"more than a 1-ulp change of one weight did ({100 * control_max:.2f} points): an "
            "effect of any last-bit difference, not of f'(0)"
        )
    return (
        f"in training {departed} runs parted from their twin and moved final accuracy by up to "
        f"{100 * twin_max:.2f} points, more than a 1-ulp change of one weight did "
        f"({100 * control_max:.2f} points)"
    )


def exact_zero_findings(section: Section, epochs: pd.DataFrame) -> None:
    """Without the twins table: how often training met an exact zero that f'(0) could change."""
    trained = _kinked(epochs)
    trained = trained[trained["epoch"] > 0]
    if trained.empty:
        section.add("The study trained no kinked activation, so ReLU'(0) never entered.")
        return
    per_run = trained.groupby(["point", "seed", "precision"], as_index=False)[
        ["exact_zeros", "live_exact_zeros"]
    ].sum()
    for precision, runs in per_run.groupby("precision"):
        live = runs["live_exact_zeros"]
        section.add(
            f"In {precision} training of the kinked activations, a run met "
            f"{num(runs['exact_zeros'].mean())} pre-activations exactly equal to 0 on average, "
            f"{num(live.mean())} of them with a non-zero upstream gradient (the only case where "
            f"f'(0) changes a gradient); {int((live > 0).sum())} of {len(runs)} runs met one.",
            "epochs",
        )


# -- settings ---------------------------------------------------------------------------------
OPTIMIZER_NAMES = {"sgd": "plain SGD", "momentum": "SGD with momentum 0.9", "adam": "Adam"}
INIT_NAMES = {
    "default": "PyTorch default init",
    "kaiming_normal": "Kaiming normal init",
    "kaiming_uniform": "Kaiming uniform init",
    "xavier_normal": "Xavier normal init",
    "xavier_uniform": "Xavier uniform init",
}
SGD_FAMILY = ("sgd", "momentum")
REMEDIES = ("leaky_relu", "prelu", "rrelu", "elu")
SATURATING = ("sigmoid", "tanh")
SETTING_KEYS = ("optimizer", "init", "batch_norm")


def _configured(inputs: Inputs, key: str):
    """A setting from the config when a table has no column for it (lists joined)."""
    section = "training" if key == "optimizer" else "model"
    value = inputs.config.get(section, {}).get(key)
    if isinstance(value, list):
        return value[0] if len(value) == 1 else "/".join(str(v) for v in value)
    return {"init": "default", "batch_norm": False}.get(key) if value is None else value


def _setting_value(row, key: str, inputs: Inputs):
    value = row.get(key) if hasattr(row, "get") else getattr(row, key, None)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _configured(inputs, key)
    return value


def setting(row, inputs: Inputs) -> str:
    """The optimizer, init and batch norm a number was measured with, in words."""
    optimizer = _setting_value(row, "optimizer", inputs)
    init = _setting_value(row, "init", inputs)
    batch_norm = _setting_value(row, "batch_norm", inputs)
    norm = "batch norm" if str(batch_norm) in ("True", "true", "1") else "no batch norm"
    return (
        f"{OPTIMIZER_NAMES.get(optimizer, optimizer)}, {INIT_NAMES.get(init, f'{init} init')}, "
        f"{norm}"
    )


def with_settings(frame: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """``frame`` with an optimizer, init and batch norm column, from the config where absent."""
    missing = {k: _configured(inputs, k) for k in SETTING_KEYS if k not in frame.columns}
    return frame.assign(**missing) if missing else frame


def _settings_of(frame: pd.DataFrame) -> list[str]:
    return [k for k in SETTING_KEYS if k in frame.columns]


def by_setting(frame: pd.DataFrame):
    """(key, rows) per optimizer, init and batch norm present in ``frame`` (one group if none
    of these columns; no group for an empty frame)."""
    if frame.empty:
        return
    keys = _settings_of(frame)
    if not keys:
        yield None, frame
        return
    yield from frame.groupby(keys, sort=True, dropna=False)


def _top(frame: pd.DataFrame, column: str, largest: bool = True) -> pd.Series | None:
    """The row with the largest (smallest) finite ``column``, or None when there is none."""
    if column not in frame:
        return None
    finite = frame[pd.to_numeric(frame[column], errors="coerce").notna()]
    if finite.empty:
        return None
    index = finite[column].astype(float).idxmax() if largest else finite[column].idxmin()
    return finite.loc[index]


def _with(frame: pd.DataFrame, **values) -> pd.DataFrame:
    """Rows whose columns equal ``values`` (a column the frame lacks is not filtered on)."""
    for key, value in values.items():
        if key in frame.columns:
            allowed = value if isinstance(value, (list, tuple, set)) else [value]
            frame = frame[frame[key].isin(allowed)]
    return frame


def gm(mean: float, low: float, high: float) -> str:
    """A geometric mean with its 95 % interval, e.g. ``0.012 [0.008, 0.018]``."""
    if not math.isfinite(mean):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{num(mean, 2)} (one seed, no interval)"
    return f"{num(mean, 2)} [{num(low, 2)}, {num(high, 2)}]"


def pct_interval(low: float, high: float) -> str:
    return f"[{pct(low)}, {pct(high)}]"


def _interval(mean: float, half: float) -> tuple[float, float]:
    if not math.isfinite(half):
        return -math.inf, math.inf
    return mean - half, mean + half


def separated(a: tuple[float, float], b: tuple[float, float]) -> int:
    """+1 if interval ``a`` lies wholly above ``b``, -1 if wholly below, 0 if they overlap."""
    if a[0] > b[1]:
        return 1
    if a[1] < b[0]:
        return -1
    return 0


def rank_text(best: int, worst: int) -> str:
    if best == 0:
        return "no rank"
    return f"rank {best}" if best == worst else f"rank {best}–{worst}"


# -- Q2 ---------------------------------------------------------------------------------------
def q2_section(inputs: Inputs) -> Section:
    section = Section("Q2. How many neurons die, when, and do they come back?")
    death = inputs.death
    if death.empty:
        section.add("The study has no per-layer measurements.")
        return section
    for _, rows in by_setting(death):
        death_headline(section, rows, inputs)
    section.table = per_activation_death(death, inputs)
    died = sorted(death.loc[death["peak_dead_mean"] > 0, "variant"].unique())
    never = sorted(set(death["variant"]) - set(died))
    if died:
        text = "Units died (local derivative exactly 0 on every training example) with " + listing(
            died
        )
        text += f"; no unit was ever dead with {listing(never)}." if never else "."
    else:
        text = "No unit was dead at any measurement of any run."
    section.add(text, "death")
    relu = _with(death, activation="relu", zero_grad=0.0)
    for _, rows in by_setting(relu):
        for depth, part in rows.groupby("depth"):
            part = part.sort_values("lr")
            if len(part) > 1:
                steps = [f"{pct(r.final_dead_mean)} at lr {r.lr:g}" for r in part.itertuples()]
                section.add(
                    f"With ReLU (f'(0)=0), {hidden(depth)} and {setting(part.iloc[0], inputs)}, "
                    f"the final dead fraction went {listing(steps)}.",
                    "death",
                    "dead_heatmap",
                )
    born_findings(section, death, inputs)
    dying = death[death["peak_dead_mean"] > 0]
    if len(dying):
        kept = (dying["final_dead_mean"] / dying["peak_dead_mean"]).median()
        section.add(
            f"Where units died, the dead fraction peaked at epoch "
            f"{num(dying['peak_epoch_median'].median(), 2)} (median over those "
            f"{points(len(dying))}, of {inputs.config['training']['epochs']} epochs), and "
            f"at the last epoch {pct(kept, 0)} of the peak was still dead (median).",
            "death",
            "death_over_time",
        )
    inference_findings(section, death, inputs)
    if inputs.revival_pooled is not None and len(inputs.revival_pooled):
        section.findings.extend(revival_by_cause_findings(inputs.revival_pooled, inputs))
    else:
        section.findings.extend(revival_findings(inputs.revival))
    return section


def death_headline(section: Section, death: pd.DataFrame, inputs: Inputs) -> None:
    """The largest dead fraction of one setting, against the CS231n 40 %."""
    top = _top(death, "final_dead_mean")
    if top is None:
        section.add(
            f"With {setting(death.iloc[0], inputs)} every run diverged, so no unit could be "
            "counted.",
            "death",
        )
        return
    worst = _top(death, "worst_layer_dead_mean")
    verdict = "above" if top["final_dead_mean"] >= CLAIMED_DEAD else "below"
    section.add(
        f"The largest dead fraction at the end of training with {setting(top, inputs)} was "
        f"{pct_ci(top['final_dead_mean'], top['final_dead_ci95'])} of all hidden units "
        f'({top["variant"]}, {where(top)}), {verdict} the "as much as 40 %" of the CS231n '
        f"notes; the worst single hidden layer reached "
        f"{pct_ci(worst['worst_layer_dead_mean'], worst['worst_layer_dead_ci95'])} at some "
        f"epoch ({worst['variant']}, {where(worst)}).",
        "death",
        "dead_heatmap",
    )


def born_findings(section: Section, death: pd.DataFrame, inputs: Inputs) -> None:
    """Units dead before any training, per setting (they depend on the init)."""
    for _, rows in by_setting(death):
        born = _top(rows, "born_dead_mean")
        if born is None:
            continue
        if born["born_dead_mean"] > 0:
            section.add(
                f"Some units were dead before any training ({setting(born, inputs)}): at most "
                f"{pct_ci(born['born_dead_mean'], born['born_dead_ci95'])} ({born['variant']}, "
                f"{hidden(born['depth'])}).",
                "death",
            )
        else:
            deepest = int(rows["depth"].max())
            section.add(
                f"No unit was dead at initialisation with {setting(born, inputs)}, up to "
                f"{hidden(deepest)}.",
                "death",
            )
    table = inputs.born_dead
    if table is None or table.empty:
        return
    narrow = int(table["width"].min())
    parts = []
    for init, rows in table[table["width"] == narrow].groupby("init", sort=False):
        rows = rows.sort_values("depth")
        first, last = rows.iloc[0], rows.iloc[-1]
        parts.append(
            f"with {INIT_NAMES.get(init, init)} {pct(first['network_dead_fraction'], 0)} at "
            f"{hidden(first['depth'])} and {pct(last['network_dead_fraction'], 0)} "
            f"{pct_interval(last['network_dead_ci_low'], last['network_dead_ci_high'])} at "
            f"{hidden(last['depth'])}"
        )
    section.add(
        f"Untrained ReLU networks of width {narrow} (no training, "
        f"{int(table['networks'].iloc[0])} initialisations each) had a hidden layer dead on "
        f"every training example {listing(parts)} (95 % Wilson intervals); Lu et al. (2019) "
        "predict that this probability grows to 1 with depth, fastest for narrow networks.",
        "born_dead",
        "born_dead_figure",
    )


def inference_findings(section: Section, death: pd.DataFrame, inputs: Inputs) -> None:
    """With batch norm: dead with batch statistics (as trained) against at inference."""
    if "born_dead_at_inference_mean" not in death:
        return
    normed = death[death["batch_norm"].astype(str).isin(["True", "true", "1"])]
    top = _top(normed, "born_dead_at_inference_mean")
    if top is None:
        return
    section.add(
        f"With batch norm ({setting(top, inputs)}), the untrained networks had "
        f"{pct_ci(top['born_dead_at_inference_mean'], top['born_dead_at_inference_ci95'])} "
        f"of their units dead with the running statistics used at inference, and "
        f"{pct_ci(top['born_dead_mean'], top['born_dead_ci95'])} with the batch statistics "
        f"training uses ({top['variant']}, {where(top)}); this report counts the latter.",
        "death",
    )


def per_activation_death(death: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """For each setting and activation variant: its largest final dead fraction and where."""
    rows = []
    for _, part in by_setting(death):
        for variant, group in part.groupby("variant"):
            top = _top(group, "final_dead_mean")
            if top is None:
                rows.append({"setting": setting(group.iloc[0], inputs), "activation": variant})
                continue
            peak = _top(group, "peak_dead_mean")
            rows.append(
                {
                    "setting": setting(top, inputs),
                    "activation": variant,
                    "largest final dead fraction": pct_ci(
                        top["final_dead_mean"], top["final_dead_ci95"]
                    ),
                    "at": where(top) if top["final_dead_mean"] > 0 else "",
                    "largest at any epoch": pct(peak["peak_dead_mean"]),
                    "worst single layer": pct(group["worst_layer_dead_mean"].max()),
                }
            )
    return pd.DataFrame(rows).fillna("all runs diverged")


def revival_findings(revival: pd.DataFrame) -> list[Finding]:
    """Revival by layer group from the per-point table (both causes together)."""
    sources = (SOURCES["revival"], SOURCES["death_by_layer"])
    if "cause" in revival:
        revival = revival[revival["cause"] == "any"].rename(
            columns={"died_mean": "ever_dead_mean", "died_ci95": "ever_dead_ci95"}
        )
    if revival.empty or revival["ever_dead_mean"].fillna(0).sum() == 0:
        return [Finding("No unit died, so none could come back.", sources)]
    parts = []
    for group in ("first hidden layer", "deeper hidden layers"):
        rows = revival[revival["layer_group"] == group]
        ever = rows["ever_dead_mean"].sum()
        if ever == 0:
            parts.append(f"no unit of the {group} ever died")
            continue
        share = rows["revived_mean"].sum() / ever
        died = rows.loc[rows["ever_dead_mean"] > 0, "point"].nunique()
        revived = rows.loc[rows["revived_mean"] > 0, "point"].nunique()
        parts.append(
            f"of the units that died in the {group}, {pct(share)} were alive again at the last "
            f"epoch (some revival at {revived} of the {points(died)} with deaths there)"
        )
    text = "; ".join(parts)
    findings = [Finding(text[0].upper() + text[1:] + ".", sources)]
    best = _top(revival, "revived_mean")
    if best is not None and best["revived_mean"] > 0:
        findings.append(
            Finding(
                f"The most revival was in layer {int(best['layer'])} of {best['variant']} at "
                f"{where(best)}: {pct_ci(best['revived_mean'], best['revived_ci95'])} of its "
                f"units had died and come back by the last epoch.",
                sources,
            )
        )
    return findings


def revival_by_cause_findings(pooled: pd.DataFrame, inputs: Inputs) -> list[Finding]:
    """Per setting: revival of born-dead units and of units that died in training, by layer
    group, each run counted once (bitwise f'(0) twins left out)."""
    sources = (SOURCES["revival_pooled"], SOURCES["revival"], SOURCES["death_by_layer"])
    found = []
    causes = pooled[pooled["cause"] != "any"]
    if causes.empty:
        causes = pooled
    if causes["runs_with_deaths"].sum() == 0:
        return [Finding("No unit died, so none could come back.", sources)]
    for _, rows in by_setting(causes):
        parts = []
        for cause, part in rows.groupby("cause", sort=False):
            groups = []
            for row in part.sort_values("layer_group", ascending=False).itertuples():
                if row.runs_with_deaths == 0:
                    groups.append(f"none in the {row.layer_group}")
                    continue
                groups.append(
                    f"{pct_ci(row.revived_share_mean, row.revived_share_ci95)} alive again in "
                    f"the {row.layer_group} ({row.runs_with_deaths} of {row.runs} runs had some)"
                )
            parts.append(f"{cause}: {'; '.join(groups)}")
        found.append(
            Finding(
                f"Revival by cause with {setting(rows.iloc[0], inputs)} (share of the units "
                f"that died, at the last epoch, mean over runs; bitwise f'(0) twins counted "
                f"once): {' — '.join(parts)}.",
                sources,
            )
        )
    return found


# -- Q3 ---------------------------------------------------------------------------------------
def q3_section(inputs: Inputs) -> Section:
    section = Section("Q3. The other claims made for ReLU")
    gradient_findings(section, inputs)
    convergence_findings(section, inputs)
    cost_findings(section, inputs.cost)
    sparsity_findings(section, inputs)
    return section


def gradient_measure(gradient: pd.DataFrame) -> tuple[str, str]:
    """The column prefix of the gradient-flow measure and its description: the backward signal
    at the pre-activations where measured, else (older studies) the weight-gradient norms."""
    if "ratio_to_last_gmean" in gradient and gradient["ratio_to_last_gmean"].notna().any():
        return "", "backward signal at the pre-activations (RMS of dL/dz over the training set)"
    return "weight_", "weight-gradient norm (the pre-activation signal was not measured)"


def _first_layers(inputs: Inputs) -> tuple[pd.DataFrame, str, str]:
    gradient = inputs.gradient
    chosen = gradient[gradient["point"].isin(inputs.depth_ids)] if inputs.depth_ids else gradient
    if chosen.empty:
        chosen = gradient
    prefix, measure = gradient_measure(chosen)
    first = chosen[chosen["layer"] == 1]
    return first.dropna(subset=[f"{prefix}ratio_to_last_gmean"]), prefix, measure


def gradient_findings(section: Section, inputs: Inputs) -> None:
    if inputs.gradient.empty:
        section.add("No gradients were recorded.")
        return
    first, prefix, measure = _first_layers(inputs)
    if first.empty:
        section.add("No gradient ratio could be computed (every run diverged).", "gradient")
        return
    epoch = first[f"{prefix}epoch"].iloc[0]
    when = "untrained network" if str(epoch) == "0" else f"epoch {epoch}"
    column = f"{prefix}ratio_to_last"
    for _, rows in by_setting(first):
        deepest = int(rows["depth"].max())
        lr = sorted(rows["lr"].unique())[0]
        at_depth = rows[(rows["depth"] == deepest) & (rows["lr"] == lr)]
        at_depth = at_depth.sort_values(f"{column}_gmean")
        if deepest < 2 or at_depth.empty:
            continue
        ratios = [
            f"{r['variant']} {gm(r[f'{column}_gmean'], r[f'{column}_low'], r[f'{column}_high'])}"
            for _, r in at_depth.iterrows()
        ]
        section.add(
            f"Vanishing gradients ({setting(at_depth.iloc[0], inputs)}, {hidden(deepest)}, lr "
            f"{lr:g}, {when}): the {measure} at the first hidden layer as a multiple of the last "
            f"hidden layer's, geometric mean over seeds [95 % interval], was {listing(ratios)} "
            "(below 1: the signal shrinks towards the input).",
            "gradient",
            "gradient_by_depth",
        )
        by_activation = at_depth.set_index("activation")
        saturating = [a for a in SATURATING if a in by_activation.index]
        if "relu" in by_activation.index and saturating:
            relu = by_activation.loc[["relu"]].iloc[0]
            compared = []
            for name in saturating:
                other = by_activation.loc[name]
                order = separated(
                    (relu[f"{column}_low"], relu[f"{column}_high"]),
                    (other[f"{column}_low"], other[f"{column}_high"]),
                )
                word = {1: "intervals separate", -1: "intervals separate", 0: "intervals overlap"}
                compared.append(
                    f"{ratio(relu[f'{column}_gmean'] / other[f'{column}_gmean'])} that of "
                    f"{name} ({word[order]})"
                )
            section.add(
                f"At that depth ReLU's first-to-last ratio was {listing(compared)}.",
                "gradient",
                "gradient_by_depth",
            )
        if prefix == "" and "weight_ratio_to_last_gmean" in at_depth:
            weights = [
                f"{r['variant']} {num(r['weight_ratio_to_last_gmean'], 2)}"
                for _, r in at_depth.iterrows()
            ]
            section.add(
                "The weight-gradient norms, which also scale with each layer's input size and "
                f"activation scale, give first-to-last ratios of {listing(weights)} in the first "
                "epoch (a second view, not the measure).",
                "gradient",
            )
        depths = sorted(rows["depth"].unique())
        if len(depths) > 1 and depths[0] > 1:
            trend = []
            for variant, part in rows[rows["lr"] == lr].groupby("variant"):
                part = part.set_index("depth")[f"{column}_gmean"]
                if depths[0] in part and depths[-1] in part:
                    trend.append(
                        f"{variant} {num(part[depths[0]], 2)} → {num(part[depths[-1]], 2)}"
                    )
            if trend:
                section.add(
                    f"From {depths[0]} to {hidden(depths[-1])} ({setting(rows.iloc[0], inputs)})"
                    f" the same ratio went {listing(trend)}.",
                    "gradient",
                    "gradient_by_depth",
                )


def convergence_findings(section: Section, inputs: Inputs) -> None:
    conv = inputs.convergence
    if conv.empty:
        return
    target = float(conv["target"].iloc[0])
    best_lr = inputs.best_lr
    if best_lr is not None and len(best_lr):
        held_out_findings(section, _breadth(best_lr, inputs), target, inputs)
    else:
        same_seed_findings(section, _breadth(conv, inputs), target, inputs)
    section.tables.append(("Convergence at every learning rate", every_lr_table(conv, inputs)))
    deep = conv[conv["point"].isin(inputs.depth_ids)]
    if deep["depth"].nunique() > 1:
        shallow, deepest = int(deep["depth"].min()), int(deep["depth"].max())
        changes = []
        for variant, rows in deep.groupby("variant"):
            rows = rows.groupby("depth")["auc_mean"].mean()
            if shallow in rows.index and deepest in rows.index:
                changes.append(f"{variant} {num(rows[shallow], 3)} → {num(rows[deepest], 3)}")
        section.add(
            f"From {shallow} to {hidden(deepest)} ({setting(deep.iloc[0], inputs)}, lr "
            f"{', '.join(f'{v:g}' for v in sorted(deep['lr'].unique()))}) the area under the "
            f"curve went {listing(changes)}.",
            "convergence",
            "convergence_figure",
        )


def held_out_findings(section: Section, best: pd.DataFrame, target: float, inputs: Inputs):
    """Each activation at its best lr, chosen on some seeds and reported on the others."""
    # f'(0) other than 0 is Q1's question; its runs are mostly bitwise copies of f'(0)=0.
    best = best[best["zero_grad"].fillna(0.0) == 0.0]
    for _, rows in by_setting(best):
        rows = convergence.add_rank_range(rows, "auc", [])
        rows = rows.sort_values(["auc_rank_best", "auc_mean"], ascending=[True, False])
        first = rows.iloc[0]
        held = first["selection"] == "held-out seeds"
        ranked = []
        for r in rows.itertuples():
            if not math.isfinite(r.auc_mean):
                ranked.append(f"{r.variant} (lr {r.chosen_lr:g}: every reported run diverged)")
                continue
            ranked.append(
                f"{r.variant} {num(r.auc_mean, 3)} ± {num(r.auc_ci95, 2)} (lr "
                f"{r.chosen_lr:g}, {rank_text(r.auc_rank_best, r.auc_rank_worst)})"
            )
        how = (
            f"chosen on {int(first['selection_seeds'])} seeds and reported on the other "
            f"{int(first['report_seeds'])}"
            if held
            else "chosen and reported on the same single seed (no seed to hold out)"
        )
        section.add(
            f"Convergence with {setting(first, inputs)}: the area under the validation-accuracy "
            f"curve (mean accuracy over training) at each activation's best learning rate "
            f"(f'(0)=0), {how}, with 95 % intervals and the ranks they allow (ranks among these "
            f"variants): {listing(ranked)}.",
            "best_lr",
            "convergence_figure",
        )
        reached = []
        for r in rows.itertuples():
            finished = r.report_seeds - r.diverged
            if r.reached:
                reached.append(
                    f"{r.variant} after {num(r.steps_to_target_mean, 3)} ± "
                    f"{num(r.steps_to_target_ci95, 2)} steps ({r.reached}/{finished} seeds)"
                )
            else:
                reached.append(f"{r.variant} never ({finished} finished seeds)")
        section.add(
            f"At the same learning rates ({setting(first, inputs)}), {pct(target, 0)} "
            f"validation accuracy was reached by {listing(reached)}.",
            "best_lr",
            "convergence_figure",
        )


def same_seed_findings(section: Section, conv: pd.DataFrame, target: float, inputs: Inputs):
    """Without a held-out choice: the best lr per activation, said to be chosen in-sample."""
    for _, rows in by_setting(conv):
        finite = rows.dropna(subset=["auc_mean"])
        if finite.empty:
            section.add(f"With {setting(rows.iloc[0], inputs)} every run diverged.", "convergence")
            continue
        best = finite.loc[finite.groupby("variant")["auc_mean"].idxmax()].sort_values(
            "auc_mean", ascending=False
        )
        ranked = [
            f"{r.variant} {num(r.auc_mean, 3)} ± {num(r.auc_ci95, 2)} (lr {r.lr:g})"
            for r in best.itertuples()
        ]
        section.add(
            "Convergence, ranked by the area under the validation-accuracy curve (the mean "
            f"accuracy over training) at each activation's best learning rate, chosen on the "
            f"same seeds it reports ({setting(best.iloc[0], inputs)}): {listing(ranked)}.",
            "convergence",
            "convergence_figure",
        )
        reached = []
        for r in best.itertuples():
            if r.reached:
                reached.append(
                    f"{r.variant} after {num(r.epochs_to_target_mean, 2)} epochs "
                    f"({r.reached}/{r.finished} seeds)"
                )
            else:
                reached.append(f"{r.variant} never ({r.finished} seeds)")
        section.add(
            f"At the same learning rates, {pct(target, 0)} validation accuracy was reached by "
            f"{listing(reached)}.",
            "convergence",
            "convergence_figure",
        )


def every_lr_table(conv: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """AUC ± 95 % half-width and rank range of every point (depth study aside), a column per lr."""
    main = _breadth(conv, inputs)
    if main.empty:
        return pd.DataFrame()
    cells = []
    for r in main.itertuples():
        if not math.isfinite(r.auc_mean):
            text = "diverged"
        else:
            rank = ""
            if hasattr(r, "auc_rank_best"):
                rank = f" ({rank_text(r.auc_rank_best, r.auc_rank_worst)})"
            text = f"{num(r.auc_mean, 3)} ± {num(r.auc_ci95, 2)}{rank}"
        cells.append(
            {
                "setting": setting(r._asdict(), inputs),
                "activation": r.variant,
                "lr": f"AUC at lr {r.lr:g}",
                "cell": text,
            }
        )
    frame = pd.DataFrame(cells)
    table = frame.pivot_table(
        index=["setting", "activation"], columns="lr", values="cell", aggfunc="first"
    )
    return table.reset_index().fillna("")


def cost_findings(section: Section, cost: pd.DataFrame | None) -> None:
    if cost is None or cost.empty:
        section.add("The cost benchmark was not run, so no cost is reported.")
        return
    if "verdict" not in cost and "relative_low" in cost:
        cost = cost_benchmark.add_verdicts(cost)
    for device, table in cost.groupby("device", sort=False):
        largest = int(table["elements"].max())
        at = table[table["elements"] == largest].set_index("variant")
        reference = at.loc[cost_benchmark.REFERENCE]
        own = at[
            (at["implementation"] == "pytorch")
            & ~at.index.isin([cost_benchmark.REFERENCE, cost_benchmark.NULL])
        ]
        relative = own["relative"].sort_values()
        dearest = relative.index[-1]
        text = (
            f"Cost on {device} ({table['precision'].iloc[0]}, {largest:,} elements, "
            f"forward + backward, median of {int(reference['repeats'])} repeats): torch.relu "
            f"took {num(reference['ns_per_element'], 3)} ns per element; "
            + listing([f"{v} {ratio(r)}" for v, r in relative.items()])
            + f" of that. The most expensive was {dearest}."
        )
        if cost_benchmark.NULL in at.index and "verdict" in at:
            null = at.loc[cost_benchmark.NULL]
            verdicts = own["verdict"]
            cheaper = sorted(verdicts.index[verdicts == "cheaper"])
            dearer = sorted(verdicts.index[verdicts == "dearer"])
            noise = sorted(verdicts.index[verdicts == "within noise"])
            text += (
                f" torch.relu timed against a second copy of itself measured "
                f"{ratio(null['relative'])} [{num(null['relative_low'], 3)}, "
                f"{num(null['relative_high'], 3)}] (95 % interval of the median), the noise a "
                f"difference must exceed: cheaper than torch.relu {listing(cheaper) or 'none'};"
                f" dearer {listing(dearer) or 'none'}; within the noise "
                f"{listing(noise) or 'none'}."
            )
        else:
            text += " No null comparison was timed, so no variant is called cheaper or dearer."
        section.add(text, "cost", "cost_figure")
        ours = cost_benchmark.zero_grad_relu_overhead(table)
        if len(ours):
            worst = ours.loc[ours.groupby("zero_grad")["relative"].idxmax()]
            limit = cost_benchmark.ZERO_GRAD_RELU_LIMIT
            over = [f"f'(0)={z:g}" for z in worst.loc[worst["relative"] > limit, "zero_grad"]]
            shown = [
                f"{ratio(r.relative)} for f'(0)={r.zero_grad:g} (at {r.elements:,} elements)"
                for r in worst.itertuples()
            ]
            verdict = (
                f"more than the {limit:g}× relulab allows it for {listing(over)}"
                if over
                else f"within the {limit:g}× relulab allows it"
            )
            section.add(
                f"relulab's ReLU with a chosen f'(0) (the module the study trains ReLU with) "
                f"cost at worst {listing(shown)} the time of torch.relu on {device}: "
                f"{verdict}.{_relu_implementation(ours)}",
                "cost",
                "cost_figure",
            )
        _other_kinked_cost(section, table, device)


def _relu_implementation(ours: pd.DataFrame) -> str:
    """Which CPU implementation timed the f'(0) values PyTorch has no kernel for, if recorded."""
    if "compiled_operator" not in ours:
        return ""
    custom = ours[~ours["zero_grad"].isin([0.0, 1.0])]
    if custom.empty:
        return ""
    if custom["compiled_operator"].all():
        return " For f'(0) other than 0 and 1 this is relulab's compiled operator."
    return (
        " For f'(0) other than 0 and 1 this is relulab's Python implementation: its compiled "
        "operator could not be built on this machine (see `python -m relulab.nn.native`)."
    )


def _other_kinked_cost(section: Section, table: pd.DataFrame, device: str) -> None:
    """The other kinked activations with a chosen f'(0), each against PyTorch's own module."""
    ours = table[
        (table["implementation"] == "relulab")
        & (table["activation"].isin(["leaky_relu", "prelu", "rrelu"]))
    ]
    own = table[table["implementation"] == "pytorch"].set_index(["elements", "variant"])
    against_own = [
        (row.relative / own.loc[(row.elements, f"torch.{row.activation}"), "relative"], row)
        for row in ours.itertuples()
        if (row.elements, f"torch.{row.activation}") in own.index
    ]
    if not against_own:
        return
    worst, row = max(against_own, key=lambda pair: pair[0])
    section.add(
        f"The other kinked activations with a chosen f'(0) cost at worst {ratio(worst)} "
        f"PyTorch's own module ({row.variant} against torch.{row.activation}, at "
        f"{int(row.elements):,} elements on {device}).",
        "cost",
    )


def sparsity_findings(section: Section, inputs: Inputs) -> None:
    death = _main(inputs.death, inputs).dropna(subset=["final_sparsity_mean"])
    for _, rows in by_setting(death):
        best = rows.loc[rows.groupby("activation")["final_sparsity_mean"].idxmax()]
        best = best.sort_values("final_sparsity_mean", ascending=False)
        sparse = best[best["final_sparsity_mean"] > 0]
        dense = sorted(best.loc[best["final_sparsity_mean"] == 0, "activation"])
        text = (
            f"Sparsity ({setting(rows.iloc[0], inputs)}; outputs exactly 0 on the training set, "
            "last epoch, largest over lr): "
        )
        text += listing(
            [
                f"{r.activation} {pct_ci(r.final_sparsity_mean, r.final_sparsity_ci95)}"
                for r in sparse.itertuples()
            ]
        )
        if dense:
            text += f"; {listing(dense)} never output an exact 0"
        section.add(text + ".", "death")


# -- the claims -------------------------------------------------------------------------------
SUPPORTED, REFUTED, UNTESTABLE = "supported", "refuted", "not testable here"


def claims_section(inputs: Inputs) -> Section:
    """The seed question's claims, each in the setting where it is made, with a verdict."""
    section = Section("Claims tested")
    rows = []
    for claim in CLAIMS:
        try:
            rows.append(claim(inputs))
        except (KeyError, ValueError, IndexError, TypeError) as error:
            rows.append(
                {
                    "claim": getattr(claim, "__doc__", "").splitlines()[0],
                    "setting tested": "",
                    "measured (95 % interval)": f"could not be computed ({error!r})",
                    "verdict": UNTESTABLE,
                }
            )
    table = pd.DataFrame(rows)
    counts = table["verdict"].str.split(" ").str[0].value_counts()
    section.add(
        "Each claim made for ReLU, measured in the setting where it is made (claim | setting "
        f"| measured | verdict): {int(counts.get(SUPPORTED, 0))} supported, "
        f"{int(counts.get(REFUTED, 0))} refuted, "
        f"{len(table) - int(counts.get(SUPPORTED, 0)) - int(counts.get(REFUTED, 0))} not "
        "testable here or mixed. The sections below give every number.",
        "summary",
    )
    section.table = table
    return section


def _claim(claim: str, tested: str, measured: str, verdict: str) -> dict:
    return {
        "claim": claim,
        "setting tested": tested,
        "measured (95 % interval)": measured,
        "verdict": verdict,
    }


def claim_gradient_never_changes(inputs: Inputs) -> dict:
    """ReLU'(0) is arbitrary: it never changes a gradient."""
    claim = "ReLU'(0) is arbitrary and never matters (it never changes a gradient)"
    table = inputs.bifurcation
    if table is None or table.empty or "fraction_differ" not in table:
        return _claim(claim, "bifurcation study not run", "n/a", UNTESTABLE)
    shown, differ = [], False
    for precision, rows in table.groupby("precision", sort=False):
        top = _top(rows, "fraction_differ")
        differ |= bool(top["fraction_differ"] > 0)
        shown.append(
            f"{precision} {pct(top['fraction_differ'], 0)} "
            f"{pct_interval(top.get('ci_low', math.nan), top.get('ci_high', math.nan))}"
        )
    width, depth = int(table["width"].max()), int(table["depth"].max())
    tested = (
        f"untrained ReLU MLPs up to width {width}, {hidden(depth)}, one pass over the training "
        "set, f'(0)=0 against 1"
    )
    measured = "initialisations with a bitwise different gradient: " + listing(shown)
    return _claim(claim, tested, measured, REFUTED if differ else SUPPORTED)


def claim_accuracy_unchanged(inputs: Inputs) -> dict:
    """ReLU'(0) does not change what training reaches."""
    claim = "ReLU'(0) does not change what training reaches (final accuracy)"
    table = inputs.zero_grad_effect
    if table is None or table.empty or "departed" not in table:
        return _claim(claim, "no f'(0) twins trained", "n/a", UNTESTABLE)
    seeds, departed = int(table["seeds"].sum()), int(table["departed"].sum())
    tested = f"training, f'(0) twins (same seed and data order), {setting(table.iloc[0], inputs)}"
    measured = f"{departed} of {seeds} runs parted from their f'(0)=0 twin"
    if departed == 0:
        return _claim(claim, tested, measured, SUPPORTED)
    # Each parted seed on its own (the other seeds are equal to their twin by construction).
    top = _top(table, "departed_accuracy_difference_max_abs")
    twin_max = 0.0 if top is None else float(top["departed_accuracy_difference_max_abs"])
    if top is not None:
        measured += (
            f"; the largest change of final accuracy in a parted run {100 * twin_max:.2f} points "
            f"({top['variant']}, lr {top['lr']:g}, {top['precision']})"
        )
    control = pd.to_numeric(
        table.get("control_accuracy_difference_max_abs", pd.Series(dtype=float)),
        errors="coerce",
    ).max()
    if math.isfinite(control):
        measured += (
            f"; a 1-ulp change of one weight at the start (f'(0)=0, same seeds) moved it by up "
            f"to {100 * control:.2f} points"
        )
    if twin_max == 0:
        return _claim(claim, tested, measured, SUPPORTED)
    if math.isfinite(control) and twin_max <= control:
        return _claim(claim, tested, measured, f"{REFUTED} (no more than any last-bit change)")
    return _claim(claim, tested, measured, REFUTED)


def claim_forty_percent(inputs: Inputs) -> dict:
    """Up to 40 % of a network can be dead at a high learning rate."""
    claim = 'Up to 40 % of a network can die at a high learning rate ("plain SGD", CS231n)'
    relu = _with(with_settings(inputs.death, inputs), activation="relu", zero_grad=0.0)
    sgd = _with(relu, optimizer=list(SGD_FAMILY))
    if sgd.empty:
        top = _top(relu, "final_dead_mean")
        measured = (
            "n/a"
            if top is None
            else f"{pct_ci(top['final_dead_mean'], top['final_dead_ci95'])} with "
            f"{setting(top, inputs)} ({where(top)})"
        )
        return _claim(claim, "no SGD runs in this study", measured, UNTESTABLE)
    parts, verdicts = [], []
    for optimizer, rows in sgd.groupby("optimizer", sort=False):
        top = _top(rows, "final_dead_mean")
        lrs = ", ".join(f"{v:g}" for v in sorted(rows["lr"].unique()))
        if top is None:
            parts.append(f"{OPTIMIZER_NAMES[optimizer]}: every run diverged (lr {lrs})")
            continue
        low, high = _interval(top["final_dead_mean"], top["final_dead_ci95"])
        worst = _top(rows, "worst_layer_dead_mean")
        diverged = int(rows["diverged"].sum())
        parts.append(
            f"{OPTIMIZER_NAMES[optimizer]} (lr {lrs}): at most "
            f"{pct_ci(top['final_dead_mean'], top['final_dead_ci95'])} of all hidden units at "
            f"the end (lr {top['lr']:g}, {hidden(top['depth'])}), worst single layer "
            f"{pct(worst['worst_layer_dead_mean'])}; {diverged} runs diverged"
        )
        if top["final_dead_mean"] >= CLAIMED_DEAD:
            verdicts.append(SUPPORTED)
        elif high < CLAIMED_DEAD:
            verdicts.append(REFUTED)
        else:
            verdicts.append(UNTESTABLE)
    first = sgd.iloc[0]
    tested = (
        f"ReLU (f'(0)=0), {INIT_NAMES.get(_setting_value(first, 'init', inputs))}, "
        f"{'batch norm' if first['batch_norm'] else 'no batch norm'}, SGD at learning rates "
        "up to divergence"
    )
    verdict = SUPPORTED if SUPPORTED in verdicts else (REFUTED if verdicts else UNTESTABLE)
    if verdict == REFUTED and UNTESTABLE in verdicts:
        verdict = UNTESTABLE
    return _claim(claim, tested, "; ".join(parts), verdict)


def claim_irreversible(inputs: Inputs) -> dict:
    """A dead ReLU never comes back."""
    claim = "A dead ReLU never comes back (dying is irreversible)"
    pooled = inputs.revival_pooled
    if pooled is None or pooled.empty or "cause" not in pooled:
        return _claim(claim, "no revival-by-cause table", "n/a", UNTESTABLE)
    trained = pooled[pooled["cause"] == "died in training"]
    if trained.empty:
        trained = pooled[pooled["cause"] == "any"]
    sgd = _with(with_settings(trained, inputs), optimizer="sgd")
    if sgd.empty:
        return _claim(claim, "no plain-SGD runs in this study", "n/a", UNTESTABLE)
    parts, verdicts = [], []
    for row in sgd.sort_values("layer_group", ascending=False).itertuples():
        if row.runs_with_deaths == 0:
            parts.append(f"{row.layer_group}: no unit died in training ({row.runs} runs)")
            continue
        share = pct_ci(row.revived_share_mean, row.revived_share_ci95)
        parts.append(
            f"{row.layer_group}: {share} of the units that died in training were alive again "
            f"at the end ({row.runs_with_deaths} of {row.runs} runs had deaths)"
        )
        revived = row.revived_share_pooled > 0
        verdicts.append(f"{REFUTED if revived else SUPPORTED} ({row.layer_group})")
    tested = f"units that died in training, all activations, {setting(sgd.iloc[0], inputs)}"
    verdict = "; ".join(verdicts) if verdicts else UNTESTABLE
    return _claim(claim, tested, "; ".join(parts), verdict)


def claim_remedies(inputs: Inputs) -> dict:
    """Leaky ReLU, PReLU, RReLU and ELU fix dying ReLU."""
    claim = "Leaky ReLU, PReLU, RReLU and ELU fix dying ReLU"
    summary = with_settings(inputs.summary, inputs)
    relu = _with(summary, activation="relu", zero_grad=0.0)
    # Where the claim is made, plain SGD or momentum, when the study has ReLU units dying there.
    sgd = _with(relu, optimizer=list(SGD_FAMILY))
    if len(sgd) and sgd["dead_fraction_mean"].fillna(0).max() > 0:
        relu = sgd
    top = _top(relu, "dead_fraction_mean")
    if top is None or top["dead_fraction_mean"] <= 0:
        return _claim(claim, "ReLU units never died here", "n/a", UNTESTABLE)
    same = {k: top[k] for k in ("lr", "depth", "precision", *SETTING_KEYS) if k in summary}
    here = _with(summary, **same)
    remedies = here[here["activation"].isin(REMEDIES)]
    remedies = remedies[remedies["zero_grad"].fillna(0.0) == 0.0]
    if remedies.empty:
        return _claim(claim, f"{where(top)}: no remedy trained there", "n/a", UNTESTABLE)
    relu_acc = _interval(top["val_accuracy_mean"], top["val_accuracy_ci95"])
    parts = [
        f"ReLU {pct_ci(top['dead_fraction_mean'], top['dead_fraction_ci95'])} dead, accuracy "
        f"{pct_ci(top['val_accuracy_mean'], top['val_accuracy_ci95'])}"
    ]
    worse, better = [], []
    dying = sorted(set(remedies.loc[remedies["dead_fraction_mean"] > 0, "activation"]))
    for r in remedies.itertuples():
        if not math.isfinite(r.val_accuracy_mean):
            parts.append(f"{r.variant}: every run diverged")
            worse.append(r.activation)
            continue
        order = separated(_interval(r.val_accuracy_mean, r.val_accuracy_ci95), relu_acc)
        (worse if order < 0 else better if order > 0 else []).append(r.activation)
        parts.append(
            f"{r.variant} {pct(r.dead_fraction_mean)} dead "
            f"({pct(r.inactive_fraction_mean)} never active), accuracy "
            f"{pct_ci(r.val_accuracy_mean, r.val_accuracy_ci95)}"
        )
    tested = f"where ReLU lost most units: {where(top)}, {setting(top, inputs)}"
    if dying:
        verdict = f"{REFUTED} for {listing(dying)} (units dead there too)"
    elif worse:
        verdict = f"{REFUTED} for {listing(sorted(set(worse)))} (lower accuracy)"
    elif better:
        verdict = f"{SUPPORTED} (no dead units; higher accuracy with {listing(sorted(better))})"
    else:
        verdict = f"{SUPPORTED} (no dead units; accuracy within ReLU's interval)"
    return _claim(claim, tested, "; ".join(parts), verdict)


def claim_no_vanishing(inputs: Inputs) -> dict:
    """ReLU does not vanish like sigmoid."""
    claim = "ReLU's gradient does not vanish with depth as sigmoid's does"
    if inputs.gradient.empty:
        return _claim(claim, "no gradients recorded", "n/a", UNTESTABLE)
    first, prefix, measure = _first_layers(inputs)
    column = f"{prefix}ratio_to_last"
    parts, verdicts, tested = [], [], []
    for _, rows in by_setting(first):
        deepest = int(rows["depth"].max())
        lr = sorted(rows["lr"].unique())[0]
        at = rows[(rows["depth"] == deepest) & (rows["lr"] == lr)].set_index("activation")
        if "relu" not in at.index or "sigmoid" not in at.index or deepest < 2:
            continue
        relu, sigmoid = at.loc[["relu"]].iloc[0], at.loc["sigmoid"]
        order = separated(
            (relu[f"{column}_low"], relu[f"{column}_high"]),
            (sigmoid[f"{column}_low"], sigmoid[f"{column}_high"]),
        )
        name = setting(relu, inputs)
        tested.append(f"{name}, {hidden(deepest)}, lr {lr:g}")
        parts.append(
            f"{name}: first/last ratio relu "
            f"{gm(relu[f'{column}_gmean'], relu[f'{column}_low'], relu[f'{column}_high'])}, "
            f"sigmoid "
            f"{gm(sigmoid[f'{column}_gmean'], sigmoid[f'{column}_low'], sigmoid[f'{column}_high'])}"
        )
        verdict = {1: SUPPORTED, -1: REFUTED, 0: f"{UNTESTABLE} (intervals overlap)"}[order]
        verdicts.append(f"{verdict} ({INIT_NAMES.get(_setting_value(relu, 'init', inputs))})")
    if not parts:
        return _claim(claim, "ReLU and sigmoid not both in the depth study", "n/a", UNTESTABLE)
    measured = f"{measure}: " + "; ".join(parts)
    return _claim(claim, "; ".join(tested), measured, "; ".join(verdicts))


def claim_cheaper(inputs: Inputs) -> dict:
    """ReLU is cheaper to compute."""
    claim = "ReLU is cheaper to compute than the smooth activations"
    cost = inputs.cost
    if cost is None or cost.empty:
        return _claim(claim, "cost benchmark not run", "n/a", UNTESTABLE)
    if "verdict" not in cost:
        if "relative_low" not in cost:
            return _claim(claim, "cost benchmark without a null", "n/a", UNTESTABLE)
        cost = cost_benchmark.add_verdicts(cost)
    device = cost["device"].iloc[0]
    table = cost[(cost["device"] == device) & (cost["elements"] == cost["elements"].max())]
    smooth = table[table["activation"].isin(activations.SMOOTH)]
    if smooth.empty:
        return _claim(claim, "no smooth activation timed", "n/a", UNTESTABLE)
    null = table[table["variant"] == cost_benchmark.NULL]
    parts = [f"{r.variant} {ratio(r.relative)} ({r.verdict})" for r in smooth.itertuples()]
    if len(null):
        n = null.iloc[0]
        parts.append(
            f"torch.relu against itself {ratio(n.relative)} [{num(n.relative_low, 3)}, "
            f"{num(n.relative_high, 3)}]"
        )
    dearer = set(smooth.loc[smooth["verdict"] == "dearer", "activation"])
    cheaper = set(smooth.loc[smooth["verdict"] == "cheaper", "activation"])
    if cheaper:
        verdict = f"{REFUTED} against {listing(sorted(cheaper))}"
    elif dearer == set(smooth["activation"]):
        verdict = SUPPORTED
    else:
        noise = sorted(set(smooth["activation"]) - dearer)
        verdict = (
            f"{SUPPORTED} against {listing(sorted(dearer))}; within the noise for {listing(noise)}"
            if dearer
            else f"{UNTESTABLE} (within the noise)"
        )
    tested = (
        f"forward + backward time per element relative to torch.relu on {device}, "
        f"{int(table['elements'].iloc[0]):,} elements, {table['precision'].iloc[0]}"
    )
    return _claim(claim, tested, "; ".join(parts), verdict)


def claim_sparse(inputs: Inputs) -> dict:
    """ReLU gives sparse activations."""
    claim = "ReLU gives sparse activations"
    death = _main(inputs.death, inputs).dropna(subset=["final_sparsity_mean"])
    relu = _with(death, activation="relu", zero_grad=0.0)
    if relu.empty:
        return _claim(claim, "ReLU not trained", "n/a", UNTESTABLE)
    parts, orders = [], []
    for r in relu.sort_values("lr").itertuples():
        same = {k: getattr(r, k) for k in ("lr", "depth", *SETTING_KEYS) if k in death}
        smooth = _with(death, **same)
        smooth = smooth[smooth["activation"].isin(activations.SMOOTH)]
        densest = _top(smooth, "final_sparsity_mean")
        text = f"lr {r.lr:g}: ReLU {pct_ci(r.final_sparsity_mean, r.final_sparsity_ci95)}"
        if densest is not None:
            text += (
                f", the sparsest smooth activation ({densest['activation']}) "
                f"{pct_ci(densest['final_sparsity_mean'], densest['final_sparsity_ci95'])}"
            )
            orders.append(
                separated(
                    _interval(r.final_sparsity_mean, r.final_sparsity_ci95),
                    _interval(densest["final_sparsity_mean"], densest["final_sparsity_ci95"]),
                )
            )
        parts.append(text)
    if not orders:
        verdict = UNTESTABLE
    elif all(o > 0 for o in orders):
        verdict = SUPPORTED
    elif all(o < 0 for o in orders):
        verdict = REFUTED
    else:
        above = sum(o > 0 for o in orders)
        verdict = f"mixed (sparser than every smooth activation at {above} of {len(orders)} lrs)"
    tested = (
        f"outputs exactly 0, last epoch, whole training set, against the smooth activations at "
        f"the same lr, {hidden(relu.iloc[0]['depth'])}, {setting(relu.iloc[0], inputs)}"
    )
    return _claim(claim, tested, "; ".join(parts), verdict)


def claim_born_dead(inputs: Inputs) -> dict:
    """Deep narrow ReLU networks are born dead."""
    claim = "Deep narrow ReLU networks are born dead (Lu et al. 2019)"
    table = inputs.born_dead
    if table is None or table.empty:
        return _claim(claim, "born-dead experiment not run", "n/a", UNTESTABLE)
    narrow = int(table["width"].min())
    parts, verdicts = [], []
    for init, rows in table[table["width"] == narrow].groupby("init", sort=False):
        rows = rows.sort_values("depth")
        first, last = rows.iloc[0], rows.iloc[-1]
        parts.append(
            f"{INIT_NAMES.get(init, init)}: {pct(first['network_dead_fraction'], 0)} "
            f"{pct_interval(first['network_dead_ci_low'], first['network_dead_ci_high'])} at "
            f"depth {int(first['depth'])}, {pct(last['network_dead_fraction'], 0)} "
            f"{pct_interval(last['network_dead_ci_low'], last['network_dead_ci_high'])} at "
            f"depth {int(last['depth'])}"
        )
        order = separated(
            (last["network_dead_ci_low"], last["network_dead_ci_high"]),
            (first["network_dead_ci_low"], first["network_dead_ci_high"]),
        )
        verdicts.append(order > 0)
    tested = (
        f"untrained ReLU MLPs of width {narrow}, {int(table['networks'].iloc[0])} "
        "initialisations per depth; a network is born dead when a hidden layer is dead on "
        "every training example"
    )
    verdict = SUPPORTED if all(verdicts) else (REFUTED if not any(verdicts) else "mixed")
    return _claim(claim, tested, "; ".join(parts), verdict)


CLAIMS = (
    claim_gradient_never_changes,
    claim_accuracy_unchanged,
    claim_forty_percent,
    claim_irreversible,
    claim_remedies,
    claim_no_vanishing,
    claim_cheaper,
    claim_sparse,
    claim_born_dead,
)


# -- the report --------------------------------------------------------------------------------
def build(inputs: Inputs) -> list[Section]:
    sections = [claims_section, study_section, q1_section, q2_section, q3_section]
    return [_unless_all_diverged(make, inputs) for make in sections]


def _unless_all_diverged(make, inputs: Inputs) -> Section:
    """``make(inputs)``; where every seed diverged and it fails on having nothing to measure,
    a section that says so instead (a diverged study is a result, not a crash)."""
    try:
        return make(inputs)
    except (ValueError, KeyError, IndexError, TypeError):
        if not (inputs.summary["diverged_fraction"] >= 1).all():
            raise
    section = Section(_TITLES[make.__name__])
    section.add(
        "Not measured: every seed of every grid point diverged (summary.csv, "
        "diverged_fraction 1), so no finished run answers this question.",
        "summary",
    )
    return section


_TITLES = {
    "claims_section": "Claims tested",
    "study_section": "The study",
    "q1_section": "Q1. Does the value autograd uses for ReLU'(0) matter?",
    "q2_section": "Q2. How many neurons die, when, and do they come back?",
    "q3_section": "Q3. The other claims made for ReLU",
}


TITLE = "relulab findings"


def to_markdown(sections: list[Section]) -> str:
    lines = [f"# {TITLE}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for finding in section.findings:
            links = ", ".join(f"[{Path(s).name}]({s})" for s in finding.sources)
            lines.append(f"- {finding.text}" + (f" ({links})" if links else ""))
        lines.append("")
        if section.table is not None and len(section.table):
            lines += [section.table.to_markdown(index=False), ""]
        for caption, table in section.tables:
            if len(table):
                lines += [f"{caption}:", "", table.to_markdown(index=False), ""]
    return "\n".join(lines)


# Suffixes of the results that are items of the HTML report (every table's HTML and every
# figure; ``tests/test_workflow.py`` checks each link of the report's findings resolves).
REPORT_SUFFIXES = (".html", ".png")

# Makes the links of findings.html work where it is opened: from results/ as they are; inside
# Snakemake's zipped report (``--report x.zip``: each item in data/raw/<id>/) to the other items;
# inside the single-file report, which embeds each item as its own data: URL and so cannot link
# between them, as plain names with a hint.
LINK_SCRIPT = """<script>
(function () {
  var inZip = /\\/data\\/raw\\/[0-9a-f]{16}\\/[^\\/]+$/.test(location.pathname);
  var embedded = location.protocol === "data:";
  document.querySelectorAll("a.source").forEach(function (a) {
    if (inZip && a.dataset.reportHref) {
      a.href = a.dataset.reportHref;
    } else if (inZip || embedded) {
      a.removeAttribute("href");
      a.title = "open it from the report's menu";
    }
  });
})();
</script>"""


def report_href(source: str) -> str:
    """The link from one item of Snakemake's zipped report to the item ``source`` (a path
    relative to results/): ``../<id>/<file name>``, the id the first 16 hex digits of the
    SHA-256 of the path as the workflow names it (Snakemake's ``report_href``)."""
    path = (paths.RESULTS / source).as_posix()
    return f"../{hashlib.sha256(path.encode()).hexdigest()[:16]}/{Path(source).name}"


def _source_link(source: str) -> str:
    name = html.escape(Path(source).name)
    href = html.escape(source, quote=True)
    in_report = Path(source).suffix in REPORT_SUFFIXES
    target = f' data-report-href="{html.escape(report_href(source))}"' if in_report else ""
    return f'<a class="source" href="{href}"{target} target="_blank" rel="noopener">{name}</a>'


def to_html(sections: list[Section]) -> str:
    parts = [f"<h1>{html.escape(TITLE)}</h1>"]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>\n<ul>")
        for finding in section.findings:
            text = html.escape(finding.text).replace("`", "")
            links = ", ".join(_source_link(s) for s in finding.sources)
            parts.append(f"<li>{text}" + (f" <em>({links})</em>" if links else "") + "</li>")
        parts.append("</ul>")
        if section.table is not None and len(section.table):
            parts.append(section.table.to_html(index=False, border=0, classes="relulab-table"))
        for caption, table in section.tables:
            if len(table):
                parts.append(f"<p>{html.escape(caption)}:</p>")
                parts.append(table.to_html(index=False, border=0, classes="relulab-table"))
    parts.append(LINK_SCRIPT)
    return "\n".join(parts) + "\n"


def write(inputs: Inputs, markdown_path: str | Path, html_path: str | Path | None = None) -> None:
    sections = build(inputs)
    Path(markdown_path).parent.mkdir(parents=True, exist_ok=True)
    Path(markdown_path).write_text(to_markdown(sections))
    if html_path is not None:
        Path(html_path).write_text(to_html(sections))
