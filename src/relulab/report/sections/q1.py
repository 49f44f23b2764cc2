"""Q1. Does the value autograd uses for ReLU'(0) matter? Untrained networks (the bifurcation
study) and training (f'(0) twins against 1-ulp controls)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from relulab.experiments import bifurcation as bifurcation_experiment
from relulab.report import labels
from relulab.report.evidence import questions
from relulab.report.inputs import Inputs, Section
from relulab.report.outcome import NotMeasured
from relulab.report.sections.common import kinked
from relulab.report.text import listing, millions, num, pct
from relulab.study.settings import Study

TITLE = "Q1. Does the value autograd uses for ReLU'(0) matter?"
ANCHOR = "q1"
# Bertoin et al. (NeurIPS 2021), 3-hidden-layer MLP of width 256 on MNIST: the fraction of
# initialisations whose gradient differs between ReLU'(0)=0 and ReLU'(0)=1, at their exposure.
PUBLISHED_BIFURCATION = {p.precision: p for p in bifurcation_experiment.PAPER_POINTS}
PRECISION_ORDER = bifurcation_experiment.PRECISIONS


def section(inputs: Inputs) -> Section:
    found = Section(TITLE, ANCHOR)
    table = default_path(inputs.bifurcation)
    twins = inputs.zero_grad_effect if inputs.zero_grad_effect is not None else pd.DataFrame()
    if len(table):
        bifurcation_findings(found, table)
        rate_findings(found, inputs.bifurcation_rates)
        gemm_path_findings(found, questions.gemm_paths(inputs.bifurcation_machine))
    else:
        found.add("The bifurcation study was not run (``bifurcation.enabled`` is false).")
    if len(twins):
        twin_findings(found, twins, inputs.study)
    else:
        exact_zero_findings(found, inputs.epochs)
    return found


def default_path(table: pd.DataFrame | None) -> pd.DataFrame:
    """The bifurcation cells measured with the default GEMM path (all, if not recorded)."""
    if table is None or table.empty:
        return pd.DataFrame()
    return table[table["gemm_path"] == "default"] if "gemm_path" in table else table


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
    """Where a bifurcation number was measured: data, exposure, device and machine."""
    examples = int(row.pre_activations_per_init // (row.width * row.depth))
    inputs = getattr(row, "inputs", "standardised")
    device = getattr(row, "device", "cpu")
    return (
        f"{labels.axis_text('depth', row.depth)} of {int(row.width)} on {row.dataset} ({inputs} "
        f"inputs, {examples:,} examples: {millions(row.pre_activations_per_init)} "
        f"pre-activations per initialisation), {device}"
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


def bifurcation_findings(found: Section, table: pd.DataFrame) -> None:
    """Untrained networks: how often f'(0) changes a gradient, at which exposure, and the
    rate that carries the answer to the paper's exposure."""
    machine = questions.machine_text(table.iloc[0])
    for row in reference_cells(table).itertuples():
        found.add(
            f"{row.precision}, {bifurcation_setting(row)}: {int(row.differ)} of {int(row.inits)} "
            f"initialisations ({pct(row.fraction_differ, 0)} [{pct(row.ci_low, 0)}, "
            f"{pct(row.ci_high, 0)}], Wilson 95 %) had a mini-batch gradient differ bitwise "
            f"between f'(0)=0 and f'(0)=1; {rate_text(row)}. Bitwise results hold for the "
            f"machine measured ({machine}).",
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
        found.add(
            f"At the paper's exposure ({paper.dataset}, {paper.device}, {paper.depth}x"
            f"{paper.width}: {millions(n)} pre-activations per initialisation) our {row.precision}"
            f" rate predicts {pct(predicted[0], 0)} [{pct(predicted[1], 0)}, "
            f"{pct(predicted[2], 0)}], if the rate per pre-activation is the same at both "
            f"exposures; {paper.source} report {pct(paper.fraction_differ, 0)}.",
            "bifurcation",
        )
    float32 = table[table["precision"] == "float32"]
    if len(float32) > 1:
        ordered = float32.sort_values("pre_activations_per_init")
        sizes = [
            f"{pct(r.fraction_differ, 0)} at {int(r.depth)}x{int(r.width)} "
            f"({millions(r.pre_activations_per_init)})"
            for r in ordered.itertuples()
        ]
        found.add(
            f"In float32 on {listing(sorted(set(float32['dataset'])))}, by exposure "
            f"(pre-activations per initialisation): {listing(sizes)}.",
            "bifurcation",
            items=[f"{int(r.depth)}x{int(r.width)}" for r in ordered.itertuples()],
        )


def rate_findings(found: Section, rates: pd.DataFrame | None) -> None:
    """The equal-rate test across architectures, per precision, where it was computed."""
    if rates is None or rates.empty:
        return
    for r in rates.itertuples():
        path = getattr(r, "gemm_path", "default")
        where = "" if path in ("default", None) else f"On the {gemm_path_label(path)} GEMM path, "
        found.add(
            f"{where}{r.precision}: one exact-zero rate for all {int(r.cells)} architectures"
            f"{_architectures_listed(r)} is "
            f"{'rejected' if r.p_value < 0.05 else 'not rejected'} (chi-square {num(r.chi2, 3)}, "
            f"p = {num(r.p_value, 2)}); pooled, {num(r.pooled_rate, 2)} [{num(r.rate_low, 2)}, "
            f"{num(r.rate_high, 2)}] per pre-activation, which predicts "
            f"{pct(r.expected_fraction_at_paper, 0)} at the paper's exposure "
            "only under that constant-rate assumption.",
            "bifurcation",
        )


def gemm_path_findings(
    found: Section, counts: tuple[questions.GemmPathCount, ...] | NotMeasured
) -> None:
    """The same initialisations on two GEMM paths, per precision: how many bifurcate on each,
    how many on both, and what that says about bitwise results."""
    if isinstance(counts, NotMeasured):
        found.add(
            f"Machine dependence of the bifurcation not measured: {counts.reason}.", "bifurcation"
        )
        return
    for path in dict.fromkeys(c.other_path for c in counts):
        mine = [c for c in counts if c.other_path == path]
        label = gemm_path_label(path)
        parts = [
            f"{c.precision} ({c.inits} initialisations, {c.architectures}): {c.default_differ} "
            f"differ bitwise on the default path, {c.other_differ} on {label}, {c.shared} on both"
            for c in mine
        ]
        found.add(
            f"The same initialisations on two GEMM paths of one machine ({mine[0].machine}): "
            f"{'; '.join(parts)}. {gemm_path_meaning(mine)}",
            "bifurcation_machine",
            items=[c.precision for c in mine],
        )


def gemm_path_meaning(counts: list[questions.GemmPathCount]) -> str:
    """What the counts on two GEMM paths say about bitwise results."""
    if all(c.default_differ == c.other_differ == 0 for c in counts):
        return (
            "No initialisation bifurcated on either path, so these runs cannot tell whether "
            "the GEMM path matters."
        )
    if all(c.same_initialisations for c in counts):
        return (
            "The same initialisations bifurcated on both paths here; that two kernel paths "
            "agree bit for bit holds for this machine, not in general."
        )
    return (
        "Which initialisations bifurcate depends on the GEMM path: a bitwise result (an exact "
        "zero, a gradient that differs, an f'(0) twin) belongs to the kernel path that "
        "computed it, not to the network alone."
    )


def gemm_path_label(path: str) -> str:
    """``mkl_cbwr_compatible`` as its environment setting, ``MKL_CBWR=COMPATIBLE``."""
    if path.startswith("mkl_cbwr_"):
        return f"MKL_CBWR={path.removeprefix('mkl_cbwr_').upper()}"
    return path


def _architectures_listed(row) -> str:
    listed = getattr(row, "architectures", None)
    return f" ({listed})" if isinstance(listed, str) and listed else ""


def _axes_of(table: pd.DataFrame) -> list[str]:
    return [a for a in labels.AXES if a in table.columns]


def twin_findings(found: Section, table: pd.DataFrame, study: Study | None = None) -> None:
    """Training: runs that differ only in f'(0), whether they parted, each parted point's own
    differences beside its label, and the 1-ulp controls at the same points as a distribution."""
    where_trained = (
        f"{study.data.name}, {study.training.epochs} epochs, device {study.training.device}"
        if study is not None
        else "the data set, ? epochs, device cpu"
    )
    evidence = questions.twins(table)
    for context, rows in labels.groups(table, listed=("activation", "zero_grad", "lr")):
        seeds, departed = int(rows["seeds"].sum()), int(rows["departed"].sum())
        text = (
            f"In training with {context} ({where_trained}), {departed} of {seeds} runs with "
            f"f'(0) other than 0 parted from their f'(0)=0 twin (same seed, same data order)"
        )
        parted = rows[rows["departed"] > 0]
        names = labels.item_labels(parted, ("activation", "zero_grad", "lr")) if len(parted) else []
        if len(parted):
            shown = [
                f"{name} ({int(r.departed)} of {int(r.seeds)}: "
                f"{r.departed_accuracy_differences or 'diverged'})"
                for name, r in zip(names, parted.itertuples(), strict=True)
            ]
            text += f"; final accuracy, parted seed minus twin, in points: {'; '.join(shown)}"
        found.add(text + ".", "zero_grad_effect", items=names)
    if isinstance(evidence, tuple):
        control_findings(found, evidence)


def control_findings(found: Section, twins: tuple[questions.TwinPoint, ...]) -> None:
    """Parted twins against the 1-ulp controls at the same points, as distributions."""
    parted = [t for t in twins if t.departed]
    if not parted:
        return
    controlled = [t for t in parted if isinstance(t.controls, tuple)]
    missing = [t.label for t in parted if not isinstance(t.controls, tuple)]
    if controlled:
        twin = np.abs([d for t in controlled for d in t.differences])
        control = np.abs([d for t in controlled for d in t.controls])
        found.add(
            f"At the {len(controlled)} points whose twins parted and that have 1-ulp controls "
            f"(the same seeds at f'(0)=0, one weight moved by one unit in the last place), "
            f"the parted twins changed final accuracy by a median of "
            f"{_median_points(twin)} ({len(twin)} runs), the controls by "
            f"{_median_points(control)} ({len(control)} runs).",
            "zero_grad_effect",
        )
    if missing:
        found.add(
            f"Not testable against a control (twins parted, no 1-ulp control trained there): "
            f"{' | '.join(missing)}.",
            "zero_grad_effect",
            items=missing,
        )


def _median_points(values) -> str:
    return f"{100 * float(np.median(values)):.2f} points" if len(values) else "n/a"


def exact_zero_findings(found: Section, epochs: pd.DataFrame) -> None:
    """Without the twins table: how often training met an exact zero that f'(0) could change."""
    trained = kinked(epochs)
    trained = trained[trained["epoch"] > 0]
    if trained.empty:
        found.add("The study trained no kinked activation, so ReLU'(0) never entered.")
        return
    per_run = trained.groupby(["point", "seed", "precision"], as_index=False)[
        ["exact_zeros", "live_exact_zeros"]
    ].sum()
    for precision, runs in per_run.groupby("precision"):
        live = runs["live_exact_zeros"]
        found.add(
            f"In {precision} training of the kinked activations, a run met "
            f"{num(runs['exact_zeros'].mean())} pre-activations exactly equal to 0 on average, "
            f"{num(live.mean())} of them with a non-zero upstream gradient (the only case where "
            f"f'(0) changes a gradient); {int((live > 0).sum())} of {len(runs)} runs met one.",
            "epochs",
        )


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
