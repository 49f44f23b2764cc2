"""Q3, gradient flow by depth and convergence."""

from __future__ import annotations

import math

import pandas as pd

from relulab.report import labels
from relulab.report.evidence.runs import MIN_FINISHED_SEEDS
from relulab.report.inputs import Inputs, Section, breadth, with_axes
from relulab.report.sections.common import rank_text, separated
from relulab.report.text import gm, hidden, listing, num, pct, ratio
from relulab.tables import convergence

SATURATING = ("sigmoid", "tanh")
GRADIENT_LISTED = ("activation", "zero_grad", "lr", "depth")


def gradient_measure(gradient: pd.DataFrame) -> tuple[str, str]:
    """The column prefix of the gradient-flow measure and its description: the backward signal
    at the pre-activations where measured, else (older studies) the weight-gradient norms."""
    if "ratio_to_last_gmean" in gradient and gradient["ratio_to_last_gmean"].notna().any():
        return "", "backward signal at the pre-activations (RMS of dL/dz over the training set)"
    return "weight_", "weight-gradient norm (the pre-activation signal was not measured)"


def first_layers(inputs: Inputs) -> tuple[pd.DataFrame, str, str]:
    """Layer 1's first-to-last ratio at the depth study's points (ReLU at f'(0)=0 only: its
    other f'(0) values are Q1's question)."""
    gradient = with_axes(inputs.gradient, inputs.study)
    chosen = gradient[gradient["point"].isin(inputs.depth_ids)] if inputs.depth_ids else gradient
    if chosen.empty:
        chosen = gradient
    prefix, measure = gradient_measure(chosen)
    first = chosen[chosen["layer"] == 1]
    if "zero_grad" in first:
        first = first[first["zero_grad"].isna() | (first["zero_grad"] == 0.0)]
    return first.dropna(subset=[f"{prefix}ratio_to_last_gmean"]), prefix, measure


def gradient_findings(found: Section, inputs: Inputs) -> None:
    if inputs.gradient.empty:
        found.add("No gradients were recorded.")
        return
    first, prefix, measure = first_layers(inputs)
    if first.empty:
        found.add("No gradient ratio could be computed (every run diverged).", "gradient")
        return
    epoch = first[f"{prefix}epoch"].iloc[0]
    when = "untrained network" if str(epoch) == "0" else f"epoch {epoch}"
    column = f"{prefix}ratio_to_last"
    for context, rows in labels.groups(first, GRADIENT_LISTED):
        deepest = int(rows["depth"].max())
        lr = sorted(rows["lr"].unique())[0]
        at_depth = rows[(rows["depth"] == deepest) & (rows["lr"] == lr)]
        at_depth = at_depth.sort_values(f"{column}_gmean")
        if deepest < 2 or at_depth.empty:
            continue
        names = labels.item_labels(at_depth, ("activation", "zero_grad"))
        where = ", ".join(
            [hidden(deepest)] * (rows["depth"].nunique() > 1)
            + [f"lr {lr:g}"] * (rows["lr"].nunique() > 1)
            + [when]
        )
        ratios = [
            f"{n} {gm(r[f'{column}_gmean'], r[f'{column}_low'], r[f'{column}_high'])} "
            f"(×{num(r[f'{column}_gmean'] ** (1 / (deepest - 1)), 2)} per layer)"
            for n, (_, r) in zip(names, at_depth.iterrows(), strict=True)
        ]
        found.add(
            f"Vanishing gradients ({context}, {where}): the "
            f"{measure} at the first hidden layer as a multiple of the last hidden layer's, "
            f"geometric mean over seeds [95 % interval], was {listing(ratios)} (below 1: the "
            "signal shrinks towards the input).",
            "gradient",
            "gradient_by_depth",
            items=names,
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
                word = "intervals overlap" if order == 0 else "intervals separate"
                compared.append(
                    f"{ratio(relu[f'{column}_gmean'] / other[f'{column}_gmean'])} that of "
                    f"{name} ({word})"
                )
            found.add(
                f"At that depth ({context}) ReLU's first-to-last ratio was {listing(compared)}.",
                "gradient",
                "gradient_by_depth",
                items=saturating,
            )
        depth_trend(found, context, rows, lr, column)


def depth_trend(found: Section, context: str, rows: pd.DataFrame, lr: float, column: str):
    depths = sorted(rows["depth"].unique())
    if len(depths) < 2 or depths[0] < 2:
        return
    trend, names = [], []
    for variant, part in rows[rows["lr"] == lr].groupby("variant"):
        part = part.set_index("depth")[f"{column}_gmean"]
        if depths[0] in part and depths[-1] in part:
            names.append(variant)
            trend.append(f"{variant} {num(part[depths[0]], 2)} → {num(part[depths[-1]], 2)}")
    if trend:
        found.add(
            f"From {depths[0]} to {hidden(depths[-1])} ({context}"
            + (f", lr {lr:g}" if rows["lr"].nunique() > 1 else "")
            + ") the same ratio "
            f"went {listing(trend)}.",
            "gradient",
            "gradient_by_depth",
            items=names,
        )


def convergence_findings(found: Section, inputs: Inputs) -> None:
    conv = with_axes(inputs.convergence, inputs.study)
    if conv.empty:
        return
    target = float(conv["target"].iloc[0])
    best_lr = inputs.best_lr
    if best_lr is not None and len(best_lr):
        held_out_findings(found, with_axes(breadth(best_lr, inputs), inputs.study), target)
    found.tables.append(("Convergence at every learning rate", every_lr_table(conv, inputs)))
    deep = conv[conv["point"].isin(inputs.depth_ids)]
    if deep["depth"].nunique() > 1:
        deep_auc_findings(found, deep)


def deep_auc_findings(found: Section, deep: pd.DataFrame) -> None:
    """Area under the curve at the shallowest and deepest depth, per setting (never averaged
    over an init or any other axis that varies)."""
    if "zero_grad" in deep:
        deep = deep[deep["zero_grad"].isna() | (deep["zero_grad"] == 0.0)]
    for context, rows in labels.groups(deep, ("activation", "zero_grad", "depth")):
        shallow, deepest = int(rows["depth"].min()), int(rows["depth"].max())
        changes, names = [], []
        for variant, part in rows.groupby("variant"):
            part = part.set_index("depth")["auc_mean"]
            if shallow in part.index and deepest in part.index:
                names.append(variant)
                changes.append(f"{variant} {num(part[shallow], 3)} → {num(part[deepest], 3)}")
        if changes:
            found.add(
                f"From {shallow} to {hidden(deepest)} ({context}) the area under the "
                f"validation-accuracy curve went {listing(changes)}.",
                "convergence",
                "convergence_figure",
                items=names,
            )


def held_out_findings(found: Section, best: pd.DataFrame, target: float) -> None:
    """Each activation at its best lr, chosen on some seeds and reported on the others; ranked
    only when enough seeds report (bitwise f'(0) twins are Q1's question and left out)."""
    best = best[best["zero_grad"].isna() | (best["zero_grad"] == 0.0)]
    for context, rows in labels.groups(best, ("activation", "zero_grad")):
        rows = convergence.add_rank_range(rows, "auc", [])
        rows = rows.sort_values(["auc_mean"], ascending=False)
        first = rows.iloc[0]
        reported = int(first["report_seeds"])
        ranked_ok = reported >= MIN_FINISHED_SEEDS and first["selection"] == "held-out seeds"
        names = labels.item_labels(rows, ("activation", "zero_grad"))
        shown = []
        for name, r in zip(names, rows.itertuples(), strict=True):
            if not math.isfinite(r.auc_mean):
                shown.append(f"{name} (lr {r.chosen_lr:g}: every reported run diverged)")
                continue
            rank = f", {rank_text(r.auc_rank_best, r.auc_rank_worst)}" if ranked_ok else ""
            shown.append(
                f"{name} {num(r.auc_mean, 3)} ± {num(r.auc_ci95, 2)} (lr {r.chosen_lr:g}{rank})"
            )
        how = (
            f"chosen on {int(first['selection_seeds'])} seeds and reported on the other {reported}"
            if first["selection"] == "held-out seeds"
            else "chosen and reported on the same seed (no seed to hold out)"
        )
        caveat = (
            "with the ranks their 95 % intervals allow"
            if ranked_ok
            else f"not ranked: {reported} reporting seeds, {MIN_FINISHED_SEEDS} needed"
        )
        found.add(
            f"Convergence with {context}: the area under the validation-accuracy curve (mean "
            f"accuracy over training) at each activation's best learning rate, {how}, "
            f"{caveat}: {listing(shown)}.",
            "best_lr",
            "convergence_figure",
            items=names,
        )
        reached = []
        for name, r in zip(names, rows.itertuples(), strict=True):
            finished = r.report_seeds - r.diverged
            if r.reached:
                reached.append(
                    f"{name} after {num(r.steps_to_target_mean, 3)} ± "
                    f"{num(r.steps_to_target_ci95, 2)} steps ({r.reached}/{finished} seeds)"
                )
            else:
                reached.append(f"{name} never ({finished} finished seeds)")
        found.add(
            f"At the same learning rates ({context}), {pct(target, 0)} validation accuracy was "
            f"reached by {listing(reached)}.",
            "best_lr",
            "convergence_figure",
            items=names,
        )


def every_lr_table(conv: pd.DataFrame, inputs: Inputs) -> pd.DataFrame:
    """AUC ± 95 % half-width of every point (depth study aside), a column per lr, a row per
    setting and variant."""
    main = breadth(conv, inputs)
    if main.empty:
        return pd.DataFrame()
    setting_axes = [a for a in labels.varying(main) if a not in ("activation", "zero_grad", "lr")]
    cells = []
    for _, r in main.iterrows():
        text = (
            "diverged"
            if not math.isfinite(r["auc_mean"])
            else (f"{num(r['auc_mean'], 3)} ± {num(r['auc_ci95'], 2)}")
        )
        cells.append(
            {
                "setting": labels.label(r, setting_axes) or labels.context(main),
                "activation": r["variant"],
                "lr": f"AUC at lr {r['lr']:g}",
                "cell": text,
            }
        )
    frame = pd.DataFrame(cells)
    table = frame.pivot_table(
        index=["setting", "activation"], columns="lr", values="cell", aggfunc="first"
    )
    return table.reset_index().fillna("")
