"""Q2. How many neurons die, when, and do they come back?"""

from __future__ import annotations

import pandas as pd

from relulab.report import labels
from relulab.report.claims.irreversible import DEFINITION, SNAPSHOT_ONLY
from relulab.report.evidence import questions
from relulab.report.inputs import Inputs, Section, with_axes
from relulab.report.outcome import NotMeasured
from relulab.report.sections.common import having, top
from relulab.report.statistics import seed_interval
from relulab.report.text import capitalised, hidden, listing, pct, pct_ci, pct_interval, points
from relulab.study.settings import Study

TITLE = "Q2. How many neurons die, when, and do they come back?"
ANCHOR = "q2"
CLAIMED_DEAD = 0.40  # CS231n: "as much as 40 % of your network can be dead"
LISTED = ("activation", "zero_grad", "lr", "depth")


def section(inputs: Inputs) -> Section:
    found = Section(TITLE, ANCHOR)
    death = with_axes(inputs.death, inputs.study)
    if death.empty:
        found.add("The study has no per-layer measurements.")
        return found
    for context, rows in labels.groups(death, LISTED):
        death_headline(found, context, rows)
    found.table = per_activation_death(death)
    died = sorted(death.loc[death["peak_dead_mean"] > 0, "variant"].unique())
    never = sorted(set(death["variant"]) - set(died))
    if died:
        text = "Units died (local derivative exactly 0 on every training example) with "
        text += listing(died)
        text += f"; no unit was ever dead with {listing(never)}." if never else "."
    else:
        text = "No unit was dead at any measurement of any run."
    found.add(text, "death")
    relu = having(death, activation="relu", zero_grad=0.0)
    for context, rows in labels.groups(relu, ("activation", "zero_grad", "lr")):
        rows = rows.sort_values("lr")
        if len(rows) > 1:
            names = labels.item_labels(rows, ("lr",))
            steps = [
                f"{pct(r.final_dead_mean)} at {n}"
                for n, r in zip(names, rows.itertuples(), strict=True)
            ]
            found.add(
                f"With ReLU (f'(0)=0) and {context}, the final dead fraction went "
                f"{listing(steps)}.",
                "death",
                "dead_heatmap",
                items=names,
            )
    born_findings(found, inputs)
    dying = death[death["peak_dead_mean"] > 0]
    if len(dying):
        kept = (dying["final_dead_mean"] / dying["peak_dead_mean"]).median()
        found.add(
            f"Where units died, the dead fraction peaked at epoch "
            f"{dying['peak_epoch_median'].median():.2g} (median over those "
            f"{points(len(dying))}, of {inputs.study.training.epochs} epochs), and "
            f"at the last epoch {pct(kept, 0)} of the peak was still dead (median).",
            "death",
            "death_over_time",
        )
    inference_findings(found, death)
    revival_findings(found, inputs)
    return found


def death_headline(found: Section, context: str, death: pd.DataFrame) -> None:
    """The largest dead fraction of one setting, against the CS231n 40 %."""
    best = top(death, "final_dead_mean")
    if best is None:
        found.add(f"With {context} every run diverged, so no unit could be counted.", "death")
        return
    worst = top(death, "worst_layer_dead_mean")
    names = dict(zip(death.index, labels.item_labels(death, LISTED), strict=True))
    verdict = "at or above" if best["final_dead_mean"] >= CLAIMED_DEAD else "below"
    found.add(
        f"The largest dead fraction at the end of training with {context} was "
        f"{pct_ci(best['final_dead_mean'], best['final_dead_ci95'])} of all hidden units "
        f'({names[best.name]}), {verdict} the "as much as 40 %" of the CS231n notes (the '
        f"claims table judges it where the network learns); the worst single hidden layer "
        f"reached {pct_ci(worst['worst_layer_dead_mean'], worst['worst_layer_dead_ci95'])} at "
        f"some epoch ({names[worst.name]}).",
        "death",
        "dead_heatmap",
        items=[names[best.name]],
    )


def per_activation_death(death: pd.DataFrame) -> pd.DataFrame:
    """For each setting and activation variant: its largest final dead fraction and where."""
    rows = []
    for context, part in labels.groups(death, LISTED):
        for variant, group in part.groupby("variant"):
            best = top(group, "final_dead_mean")
            if best is None:
                rows.append({"setting": context, "activation": variant})
                continue
            peak = top(group, "peak_dead_mean")
            where = labels.label(best, [a for a in ("lr", "depth") if a in group])
            rows.append(
                {
                    "setting": context,
                    "activation": variant,
                    "largest final dead fraction": pct_ci(
                        best["final_dead_mean"], best["final_dead_ci95"]
                    ),
                    "at": where if best["final_dead_mean"] > 0 else "",
                    # Units that can never be dead (Leaky ReLU, ELU...) can still never activate.
                    "never active there": pct(best.get("final_inactive_mean")),
                    "largest at any epoch": pct(peak["peak_dead_mean"]),
                    "worst single layer": pct(group["worst_layer_dead_mean"].max()),
                }
            )
    return pd.DataFrame(rows).fillna("all runs diverged")


def born_dead_per_point(epochs: pd.DataFrame, study: Study) -> pd.DataFrame:
    """Dead at initialisation (epoch 0) per point, over every seed, including those that later
    diverged: the init decides it, not what training did afterwards."""
    start = with_axes(epochs[epochs["epoch"] == 0], study)
    axes = [a for a in labels.AXES if a in start.columns]
    rows = []
    for point, runs in start.groupby("point", sort=True):
        mean, low, high, n = seed_interval(runs["dead_fraction"], fraction=True)
        rows.append(
            {
                "point": point,
                **runs.iloc[0][axes].to_dict(),
                "born": mean,
                "low": low,
                "high": high,
                "seeds": n,
            }
        )
    return pd.DataFrame(rows)


def born_findings(found: Section, inputs: Inputs) -> None:
    """Units dead before any training, per setting (they depend on the init)."""
    born = born_dead_per_point(inputs.epochs, inputs.study) if len(inputs.epochs) else None
    if born is not None and len(born):
        for context, rows in labels.groups(born, LISTED):
            worst = top(rows, "born")
            names = dict(zip(rows.index, labels.item_labels(rows, LISTED), strict=True))
            if worst["born"] > 0:
                found.add(
                    f"Some units were dead before any training ({context}): at most "
                    f"{pct(worst['born'])} {pct_interval(worst['low'], worst['high'])} "
                    f"({names[worst.name]}; mean over all its {int(worst['seeds'])} seeds, those "
                    "that later diverged included).",
                    "death",
                    items=[names[worst.name]],
                )
            else:
                found.add(
                    f"No unit was dead at initialisation with {context}, up to "
                    f"{hidden(int(rows['depth'].max()))}.",
                    "death",
                )
    table = inputs.born_dead
    if table is None or table.empty:
        return
    narrow = int(table["width"].min())
    parts, inits = [], []
    for init, rows in table[table["width"] == narrow].groupby("init", sort=False):
        rows = rows.sort_values("depth")
        first, last = rows.iloc[0], rows.iloc[-1]
        inits.append(labels.axis_text("init", init))
        parts.append(
            f"with {inits[-1]} {pct(first['network_dead_fraction'], 0)} at "
            f"{hidden(first['depth'])} and {pct(last['network_dead_fraction'], 0)} "
            f"{pct_interval(last['network_dead_ci_low'], last['network_dead_ci_high'], 0)} at "
            f"{hidden(last['depth'])}"
        )
    found.add(
        f"Untrained ReLU networks of width {narrow} (no training, "
        f"{int(table['networks'].iloc[0])} initialisations each) had a hidden layer dead on "
        f"every training example {listing(parts)} (95 % Wilson intervals); Lu et al. (2019) "
        "predict that this probability grows to 1 with depth, fastest for narrow networks.",
        "born_dead",
        "born_dead_figure",
        items=inits,
    )


def inference_findings(found: Section, death: pd.DataFrame) -> None:
    """With batch norm: dead with batch statistics (as trained) against at inference."""
    if "born_dead_at_inference_mean" not in death or "batch_norm" not in death:
        return
    normed = death[death["batch_norm"].map(labels.truthy)]
    best = top(normed, "born_dead_at_inference_mean")
    if best is None:
        return
    found.add(
        f"With batch norm ({labels.label(best, labels.AXES)}), the untrained networks had "
        f"{pct_ci(best['born_dead_at_inference_mean'], best['born_dead_at_inference_ci95'])} "
        f"of their units dead with the running statistics used at inference, and "
        f"{pct_ci(best['born_dead_mean'], best['born_dead_ci95'])} with the batch statistics "
        f"training uses; this report counts the latter.",
        "death",
    )


def revival_findings(found: Section, inputs: Inputs) -> None:
    """Revival pooled over units, by cause and layer group, ReLU only."""
    counts = questions.revival(inputs.layers, inputs.epochs, inputs.study)
    sources = ("revival_pooled", "revival", "death_by_layer")
    if isinstance(counts, NotMeasured):
        found.add(f"Revival not measured: {counts.reason}.", *sources)
        return
    with_deaths = [c for c in counts if c.died or c.step_died]
    if not with_deaths:
        found.add("No ReLU unit died, so none could come back.", *sources)
        return
    layers = with_axes(inputs.layers, inputs.study)
    for optimizer in dict.fromkeys(c.optimizer for c in with_deaths):
        mine = [c for c in with_deaths if c.optimizer == optimizer]
        pooled = layers[(layers["activation"] == "relu") & (layers["optimizer"] == optimizer)]
        over = labels.spans(pooled, [a for a in labels.AXES if a != "optimizer"])
        items = [f"{c.cause}, {c.layer_group}" for c in mine]
        parts = [
            f"{item}: {revival_counts(c)} ({c.runs} runs)"
            for item, c in zip(items, mine, strict=True)
        ]
        by_steps = all(c.step_share is not None for c in mine)
        found.add(
            capitalised(
                f"revival of ReLU units with {labels.axis_text('optimizer', optimizer)}, pooled "
                f"over units of every run ({over or 'one grid point'}; bitwise f'(0) twins once; "
                f"Wilson 95 %; {DEFINITION if by_steps else SNAPSHOT_ONLY}): "
                + "; ".join(parts)
                + "."
            ),
            *sources,
            items=items,
        )


def revival_counts(c: questions.RevivalCount) -> str:
    """A group's revived units by the step-level definition (where recorded) and at snapshots."""
    snapshot = (
        f"{c.revived} of {c.died} units alive again at the last epoch, "
        f"{pct(c.share.mean)} {pct_interval(c.share.low, c.share.high)}"
    )
    steps = c.step_share
    if steps is None:
        return snapshot
    if not c.step_died:
        return f"no unit dead over a whole epoch's steps; at epoch-end snapshots {snapshot}"
    return (
        f"{c.step_revived} of {c.step_died} units dead over a whole epoch's steps alive in a "
        f"later epoch's, {pct(steps.mean)} {pct_interval(steps.low, steps.high)}; at epoch-end "
        f"snapshots {snapshot}"
    )
