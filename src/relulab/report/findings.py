"""The findings report: each question of the study answered in sentences built from its numbers.

Every sentence is computed from the study's tables (no sentence is written in advance), and
names the table or figure it rests on, as a path relative to ``results/``. Tables that a study
does not produce (the ReLU'(0) tables, the cost benchmark) are optional: their section then
says what is missing and falls back on what the training tables show.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from relulab.experiments import cost as cost_benchmark
from relulab.nn import activations

CLAIMED_DEAD = 0.40  # CS231n: "as much as 40 % of your network can be dead"

# Where each table and figure lives, relative to results/ (the findings file's folder).
SOURCES = {
    "summary": "tables/summary.html",
    "death": "tables/death.html",
    "revival": "tables/revival.html",
    "gradient": "tables/gradient_flow.html",
    "convergence": "tables/convergence.html",
    "cost": "tables/cost.html",
    "bifurcation": "tables/bifurcation.html",
    "zero_grad_effect": "tables/zero_grad_effect.html",
    "epochs": "tables/epochs.csv",
    "death_over_time": "figures/death_over_time.png",
    "death_by_layer": "figures/death_by_layer.png",
    "dead_heatmap": "figures/dead_heatmap.png",
    "gradient_by_depth": "figures/gradient_by_depth.png",
    "convergence_figure": "figures/convergence.png",
    "cost_figure": "figures/cost.png",
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


def read_optional(path: str | Path | None) -> pd.DataFrame | None:
    if path is None or not Path(path).exists():
        return None
    return pd.read_csv(path)


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


def _kinked(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["activation"].isin(activations.KINKED)]


# -- the study -------------------------------------------------------------------------------
def study_section(inputs: Inputs) -> Section:
    c = inputs.config
    section = Section("The study")
    seeds = int(inputs.summary["seeds"].max()) if len(inputs.summary) else 0
    depths = sorted(inputs.summary["depth"].unique())
    text = (
        f"Study `{c.get('study')}` on {c.get('dataset')}: MLPs of width {c['model']['width']} "
        f"with {listing([str(d) for d in depths])} hidden layers, trained with "
        f"{c['training']['optimizer']} for {c['training']['epochs']} epochs (batch "
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
# initialisations whose gradient differs between ReLU'(0)=0 and ReLU'(0)=1.
PUBLISHED_BIFURCATION = {"float64": 0.0, "float32": 0.46, "float16": 1.0}


def q1_section(inputs: Inputs) -> Section:
    section = Section("Q1. Does the value autograd uses for ReLU'(0) matter?")
    if inputs.bifurcation is not None and len(inputs.bifurcation):
        bifurcation_findings(section, inputs.bifurcation)
    else:
        section.add("The bifurcation study was not run (``bifurcation.enabled`` is false).")
    if inputs.zero_grad_effect is not None and len(inputs.zero_grad_effect):
        twin_findings(section, inputs.zero_grad_effect)
    else:
        exact_zero_findings(section, inputs.epochs)
    return section


def bifurcation_findings(section: Section, table: pd.DataFrame) -> None:
    """Untrained networks: how often f'(0) changes a gradient, by precision (and size)."""
    # The setting closest to the published one: the widest and deepest network measured.
    width, depth = int(table["width"].max()), int(table["depth"].max())
    cell = table[(table["width"] == width) & (table["depth"] == depth)]
    shown = [
        f"{r.precision} {pct(r.fraction_differ, 0)} [{pct(r.ci_low, 0)}, {pct(r.ci_high, 0)}]"
        for r in cell.itertuples()
    ]
    published = listing([f"{p} {pct(v, 0)}" for p, v in PUBLISHED_BIFURCATION.items()])
    section.add(
        f"Untrained MLPs with {hidden(depth)} of width {width} ({int(cell['inits'].iloc[0])}"
        f" initialisations, one pass over the training set): the fraction whose mini-batch "
        f"gradient differed bitwise between f'(0)=0 and f'(0)=1 was {listing(shown)} (95 % "
        f"Wilson intervals); Bertoin et al. report {published} for depth 3, width 256 on MNIST.",
        "bifurcation",
    )
    float32 = table[table["precision"] == "float32"]
    if len(float32) > 1:
        sizes = [
            f"{pct(r.fraction_differ, 0)} at width {int(r.width)}, depth {int(r.depth)}"
            for r in float32.sort_values(["depth", "width"]).itertuples()
        ]
        low, high = float32["exact_zero_rate"].min(), float32["exact_zero_rate"].max()
        if high == 0:
            rate = "no pre-activation was exactly 0"
        else:
            rate = f"pre-activations were exactly 0 at a rate of {num(low, 2)} to {num(high, 2)}"
        section.add(f"In float32 the fraction was {listing(sizes)}; {rate}.", "bifurcation")


def twin_findings(section: Section, table: pd.DataFrame) -> None:
    """Training: runs that differ only in f'(0), and whether they parted and by how much."""
    seeds, departed = int(table["seeds"].sum()), int(table["departed"].sum())
    text = (
        f"In training, {departed} of {seeds} runs with f'(0) other than 0 parted from their "
        f"f'(0)=0 twin (same seed, same data order) at some epoch"
    )
    if departed:
        parted = table[table["departed"] > 0]
        names = listing(sorted({f"{r.variant} at lr {r.lr:g}" for r in parted.itertuples()}))
        text += f", in {names}"
    section.add(text + ".", "zero_grad_effect")
    finite = table.dropna(subset=["accuracy_difference_mean"])
    if len(finite):
        top = finite.loc[finite["accuracy_difference_mean"].abs().idxmax()]
        low, high = top["accuracy_difference_ci_low"], top["accuracy_difference_ci_high"]
        text = (
            f"The largest mean change in final validation accuracy from f'(0) was "
            f"{100 * top['accuracy_difference_mean']:+.2f} points ({top['variant']}, lr "
            f"{top['lr']:g})"
        )
        if math.isfinite(low) and math.isfinite(high):
            verdict = "includes" if low <= 0 <= high else "excludes"
            text += (
                f"; its 95 % interval, {100 * low:+.2f} to {100 * high:+.2f}, {verdict} no change"
            )
        section.add(text + ".", "zero_grad_effect")


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


# -- Q2 ---------------------------------------------------------------------------------------
def q2_section(inputs: Inputs) -> Section:
    section = Section("Q2. How many neurons die, when, and do they come back?")
    death = inputs.death
    if death.empty:
        section.add("The study has no per-layer measurements.")
        return section
    top = death.loc[death["final_dead_mean"].idxmax()]
    worst = death.loc[death["worst_layer_dead_mean"].idxmax()]
    verdict = "above" if top["final_dead_mean"] >= CLAIMED_DEAD else "below"
    section.add(
        f"The largest dead fraction at the end of training was "
        f"{pct_ci(top['final_dead_mean'], top['final_dead_ci95'])} of all hidden units "
        f'({top["variant"]}, {where(top)}), {verdict} the "as much as 40 %" of the CS231n '
        f"notes; the worst single hidden layer reached "
        f"{pct_ci(worst['worst_layer_dead_mean'], worst['worst_layer_dead_ci95'])} at some "
        f"epoch ({worst['variant']}, {where(worst)}).",
        "death",
        "dead_heatmap",
    )
    section.table = per_activation_death(death)
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
    relu = _main(death, inputs)
    relu = relu[(relu["activation"] == "relu") & (relu["zero_grad"] == 0.0)].sort_values("lr")
    if len(relu) > 1:
        steps = [f"{pct(r.final_dead_mean)} at lr {r.lr:g}" for r in relu.itertuples()]
        section.add(
            f"With ReLU (f'(0)=0) the final dead fraction went {listing(steps)}.",
            "death",
            "dead_heatmap",
        )
    born = death.loc[death["born_dead_mean"].idxmax()]
    if born["born_dead_mean"] > 0:
        section.add(
            f"Some units were dead before any training: at most "
            f"{pct_ci(born['born_dead_mean'], born['born_dead_ci95'])} ({born['variant']}, "
            f"{hidden(born['depth'])}).",
            "death",
        )
    else:
        deepest = int(death["depth"].max())
        section.add(f"No unit was dead at initialisation, up to {hidden(deepest)}.", "death")
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
    section.findings.extend(revival_findings(inputs.revival))
    return section


def per_activation_death(death: pd.DataFrame) -> pd.DataFrame:
    """For each activation variant: its largest final dead fraction and where it happened."""
    rows = []
    for variant, group in death.groupby("variant"):
        top = group.loc[group["final_dead_mean"].idxmax()]
        peak = group.loc[group["peak_dead_mean"].idxmax()]
        rows.append(
            {
                "activation": variant,
                "largest final dead fraction": pct_ci(
                    top["final_dead_mean"], top["final_dead_ci95"]
                ),
                "at": where(top) if top["final_dead_mean"] > 0 else "",
                "largest at any epoch": pct(peak["peak_dead_mean"]),
                "worst single layer": pct(group["worst_layer_dead_mean"].max()),
            }
        )
    return pd.DataFrame(rows)


def revival_findings(revival: pd.DataFrame) -> list[Finding]:
    sources = (SOURCES["revival"], SOURCES["death_by_layer"])
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
    best = revival.loc[revival["revived_mean"].idxmax()]
    if best["revived_mean"] > 0:
        findings.append(
            Finding(
                f"The most revival was in layer {int(best['layer'])} of {best['variant']} at "
                f"{where(best)}: {pct_ci(best['revived_mean'], best['revived_ci95'])} of its "
                f"units had died and come back by the last epoch.",
                sources,
            )
        )
    return findings


# -- Q3 ---------------------------------------------------------------------------------------
def q3_section(inputs: Inputs) -> Section:
    section = Section("Q3. The other claims made for ReLU")
    gradient_findings(section, inputs)
    convergence_findings(section, inputs)
    cost_findings(section, inputs.cost)
    sparsity_findings(section, inputs)
    return section


def _first_layer_ratio(gradient: pd.DataFrame) -> pd.DataFrame:
    return gradient[gradient["layer"] == 1]


def gradient_findings(section: Section, inputs: Inputs) -> None:
    gradient = inputs.gradient
    if gradient.empty:
        section.add("No gradient norms were recorded.")
        return
    chosen = gradient[gradient["point"].isin(inputs.depth_ids)] if inputs.depth_ids else gradient
    if chosen.empty:
        chosen = gradient
    first = _first_layer_ratio(chosen)
    deepest = int(first["depth"].max())
    at_depth = first[first["depth"] == deepest]
    lr = sorted(at_depth["lr"].unique())[0]
    at_depth = at_depth[at_depth["lr"] == lr].sort_values("ratio_to_last_mean")
    if deepest > 1 and len(at_depth):
        ratios = [f"{r.variant} {num(r.ratio_to_last_mean, 2)}" for r in at_depth.itertuples()]
        section.add(
            f"Vanishing gradients: with {hidden(deepest)} (lr {lr:g}, first epoch), the "
            f"first hidden layer's weight-gradient norm as a multiple of the last hidden "
            f"layer's was {listing(ratios)} (below 1: the gradient shrinks towards the input).",
            "gradient",
            "gradient_by_depth",
        )
        by_activation = at_depth.set_index("activation")["ratio_to_last_mean"]
        saturating = [a for a in ("sigmoid", "tanh") if a in by_activation]
        if "relu" in by_activation and saturating:
            relu = by_activation["relu"]
            compared = [f"{ratio(relu / by_activation[a])} that of {a}" for a in saturating]
            section.add(
                f"At that depth ReLU's first-to-last ratio was {listing(compared)}.",
                "gradient",
                "gradient_by_depth",
            )
    depths = sorted(first["depth"].unique())
    if len(depths) > 1:
        trend = []
        for activation, rows in first[first["lr"] == lr].groupby("variant"):
            rows = rows.set_index("depth")["ratio_to_last_mean"]
            if depths[0] in rows and depths[-1] in rows and depths[0] > 1:
                trend.append(f"{activation} {num(rows[depths[0]], 2)} → {num(rows[depths[-1]], 2)}")
        if trend:
            section.add(
                f"From {depths[0]} to {hidden(depths[-1])} the same ratio went {listing(trend)}.",
                "gradient",
                "gradient_by_depth",
            )


def convergence_findings(section: Section, inputs: Inputs) -> None:
    conv = inputs.convergence
    if conv.empty:
        return
    target = float(conv["target"].iloc[0])
    main = _main(conv, inputs)
    best = main.loc[main.groupby("variant")["auc_mean"].idxmax()].sort_values(
        "auc_mean", ascending=False
    )
    ranked = [f"{r.variant} {num(r.auc_mean, 3)} (lr {r.lr:g})" for r in best.itertuples()]
    section.add(
        "Convergence, ranked by the area under the validation-accuracy curve (the mean "
        f"accuracy over training) at each activation's best learning rate: {listing(ranked)}.",
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
    deep = conv[conv["point"].isin(inputs.depth_ids)]
    if deep["depth"].nunique() > 1:
        shallow, deepest = int(deep["depth"].min()), int(deep["depth"].max())
        changes = []
        for variant, rows in deep.groupby("variant"):
            rows = rows.set_index("depth")
            if shallow in rows.index and deepest in rows.index:
                changes.append(
                    f"{variant} {num(rows.loc[shallow, 'auc_mean'], 3)} → "
                    f"{num(rows.loc[deepest, 'auc_mean'], 3)}"
                )
        section.add(
            f"From {shallow} to {hidden(deepest)} (lr "
            f"{', '.join(f'{v:g}' for v in sorted(deep['lr'].unique()))}) the area under the "
            f"curve went {listing(changes)}.",
            "convergence",
            "convergence_figure",
        )


def cost_findings(section: Section, cost: pd.DataFrame | None) -> None:
    if cost is None or cost.empty:
        section.add("The cost benchmark was not run, so no cost is reported.")
        return
    for device, table in cost.groupby("device", sort=False):
        largest = int(table["elements"].max())
        at = table[table["elements"] == largest].set_index("variant")
        reference = at.loc["torch.relu"]
        own = at[(at["implementation"] == "pytorch") & (at.index != "torch.relu")]
        relative = own["relative"].sort_values()
        cheaper = [v for v, r in relative.items() if r < 1]
        dearest = relative.index[-1]
        text = (
            f"Cost on {device} ({table['precision'].iloc[0]}, {largest:,} elements, "
            f"forward + backward, median of {int(reference['repeats'])} repeats): torch.relu "
            f"took {num(reference['ns_per_element'], 3)} ns per element; "
            + listing([f"{v} {ratio(r)}" for v, r in relative.items()])
            + f" of that. The most expensive was {dearest}."
        )
        if cheaper:
            text += f" Cheaper than torch.relu: {listing(cheaper)}."
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
    death = _main(inputs.death, inputs)
    if death.empty:
        return
    best = death.loc[death.groupby("activation")["final_sparsity_mean"].idxmax()]
    best = best.sort_values("final_sparsity_mean", ascending=False)
    sparse = best[best["final_sparsity_mean"] > 0]
    dense = sorted(best.loc[best["final_sparsity_mean"] == 0, "activation"])
    text = "Sparsity (outputs exactly 0 on the training set, last epoch, largest over lr): "
    text += listing([f"{r.activation} {pct(r.final_sparsity_mean)}" for r in sparse.itertuples()])
    if dense:
        text += f"; {listing(dense)} never output an exact 0"
    section.add(text + ".", "death")


# -- the report --------------------------------------------------------------------------------
def build(inputs: Inputs) -> list[Section]:
    sections = [study_section, q1_section, q2_section, q3_section]
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
    return "\n".join(lines)


def to_html(sections: list[Section]) -> str:
    parts = [f"<h1>{html.escape(TITLE)}</h1>"]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>\n<ul>")
        for finding in section.findings:
            text = html.escape(finding.text).replace("`", "")
            links = ", ".join(f"{html.escape(Path(s).name)}" for s in finding.sources)
            parts.append(f"<li>{text}" + (f" <em>({links})</em>" if links else "") + "</li>")
        parts.append("</ul>")
        if section.table is not None and len(section.table):
            parts.append(section.table.to_html(index=False, border=0, classes="relulab-table"))
    return "\n".join(parts) + "\n"


def write(inputs: Inputs, markdown_path: str | Path, html_path: str | Path | None = None) -> None:
    sections = build(inputs)
    Path(markdown_path).parent.mkdir(parents=True, exist_ok=True)
    Path(markdown_path).write_text(to_markdown(sections))
    if html_path is not None:
        Path(html_path).write_text(to_html(sections))
