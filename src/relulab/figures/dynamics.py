"""Figures of death over time, gradient flow, convergence and activation cost.

Colours, line styles, legend order, bands and saving come from ``relulab.figures.style``.
Diverged seeds are left out of the curves and counted in the tables; bands and error bars are
95 % intervals over seeds.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import pandas as pd
import seaborn as sns

from relulab.figures import facets, style
from relulab.figures.study import BAND
from relulab.figures.style import save
from relulab.tables import dynamics
from relulab.tables.summary import label_settings


def _lr_label(lr: float) -> str:
    return f"lr = {lr:g}"


def _empty(path: str | Path, title: str, message: str) -> None:
    figure, ax = plt.subplots(figsize=(6, 2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.4, message, ha="center", va="center", wrap=True)
    save(figure, path)


def variants_that_died(layers: pd.DataFrame) -> list[str]:
    """Variants that can die and of which a visible fraction of all hidden units
    (``facets.VISIBLE_FRACTION``) was dead at some measurement, as a mean over finished seeds."""
    whole = dynamics.network(layers)
    return facets.visibly_dead(whole, "ever_dead_fraction")


def _death_rows(layers: pd.DataFrame) -> tuple[pd.DataFrame, list[str], str]:
    """The layer rows a death figure draws (finished seeds, variants that visibly died,
    bitwise f'(0) twins as one variant), its rows' variants, and what it left out."""
    finished = layers[layers["final_status"] != "diverged"]
    shown = variants_that_died(finished)
    note = facets.left_out_note(layers["variant"], shown)
    kept = finished[finished["variant"].isin(shown)]
    columns = ["dead_fraction", "revived_fraction", "permanently_dead_fraction"]
    merged = facets.merge_identical_twins(kept, ["lr"], columns, order=("seed", "epoch", "layer"))
    return merged, style.order(merged["variant"]), note


def death_over_time(layers: pd.DataFrame, path: str | Path) -> None:
    """Dead fraction of all hidden units over epochs, with the revived share stacked on top.

    One row per activation variant in which a visible fraction of units died (bitwise f'(0)
    twins as one row), one column per learning rate; the stack (dead now + revived) is the
    fraction that was ever dead, and the dashed line the fraction dead at every measurement
    since it first died. Means over finished seeds; the black bars at the top of "dead now"
    are its 95 % interval over seeds.
    """
    title = "Dead hidden units over training"
    kept, shown, note = _death_rows(layers)
    if not shown:
        _empty(path, title, "No visible fraction of units died in any run of the main grid.")
        return
    whole = dynamics.network(kept)
    mean = whole.groupby(["variant", "lr", "epoch"], as_index=False)[
        ["dead_fraction", "revived_fraction", "permanently_dead_fraction"]
    ].mean()
    bands = (
        whole.groupby(["variant", "lr", "epoch"])["dead_fraction"]
        .apply(lambda values: pd.Series(style.mean_band(values)[1:], index=["low", "high"]))
        .unstack()
        .reset_index()
    )
    lrs = sorted(mean["lr"].unique())
    figure, axes = plt.subplots(
        len(shown),
        len(lrs),
        figsize=(3.2 * len(lrs) + 1.5, 2.2 * len(shown) + 1.4),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    colours = style.MEASURE_COLOURS
    for i, variant in enumerate(shown):
        for j, lr in enumerate(lrs):
            ax = axes[i][j]
            part = mean[(mean["variant"] == variant) & (mean["lr"] == lr)].sort_values("epoch")
            ax.set_title(f"{variant}, {_lr_label(lr)}", fontsize=9, color=style.colour(variant))
            if part.empty:
                ax.text(0.5, 0.5, "not trained", ha="center", transform=ax.transAxes)
                continue
            ax.stackplot(
                part["epoch"],
                part["dead_fraction"],
                part["revived_fraction"],
                colors=[colours["dead now"], colours["revived"]],
                labels=["dead now", "revived (dead before, alive now)"],
                alpha=0.85,
            )
            band = bands[(bands["variant"] == variant) & (bands["lr"] == lr)].sort_values("epoch")
            ax.vlines(
                band["epoch"],
                band["low"],
                band["high"],
                color=colours["interval"],
                linewidth=1.6,
                label="dead now: 95 % interval",
            )
            ax.plot(
                part["epoch"],
                part["permanently_dead_fraction"],
                color=colours["permanently dead"],
                linestyle="--",
                linewidth=1,
                label="permanently dead",
            )
            if part[["dead_fraction", "revived_fraction"]].to_numpy().max() < 1e-12:
                ax.text(0.5, 0.5, "no unit died", ha="center", transform=ax.transAxes, fontsize=8)
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    for ax in axes[-1]:
        ax.set_xlabel("epoch (0 = initialisation)")
    figure.supylabel("fraction of hidden units")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.9), fontsize=8)
    heading = f"{title} (mean over {facets.seeds_text(whole)}; bars: 95 % interval of dead now)"
    facets.title(figure, heading, kept, ("lr",), note)
    figure.tight_layout()
    save(figure, path)


def death_by_layer(layers: pd.DataFrame, path: str | Path) -> None:
    """Dead and revived fraction over epochs, first hidden layer against the deeper ones."""
    title = "Dead units by layer: first hidden layer against deeper layers"
    kept, shown, note = _death_rows(layers)
    if not shown:
        _empty(path, title, "No visible fraction of units died in any run of the main grid.")
        return
    groups = dynamics.by_layer_group(kept)
    long = groups.melt(
        id_vars=["variant", "lr", "seed", "epoch", "layer_group"],
        value_vars=["dead_fraction", "revived_fraction"],
        var_name="measure",
        value_name="fraction",
    )
    long["measure"] = long["measure"].map(
        {"dead_fraction": "dead now", "revived_fraction": "revived"}
    )
    long = long.rename(columns={"layer_group": "layers"})
    long["panel"] = long["lr"].map(_lr_label)
    order = [_lr_label(v) for v in sorted(long["lr"].unique())]
    grid = sns.relplot(
        data=long,
        x="epoch",
        y="fraction",
        hue="layers",
        hue_order=[dynamics.FIRST_LAYER, dynamics.DEEPER_LAYERS],
        palette=list(style.LAYER_COLOURS),
        style="measure",
        style_order=["dead now", "revived"],
        row="variant",
        row_order=shown,
        col="panel",
        col_order=order,
        kind="line",
        errorbar=BAND,
        height=2.2,
        aspect=1.4,
        facet_kws={"legend_out": True},
    )
    grid.set_axis_labels("epoch (0 = initialisation)", "fraction of units")
    grid.set_titles("{row_name}, {col_name}", size=9)
    for (variant, _), ax in zip(
        [(v, c) for v in shown for c in order], grid.axes.flat, strict=True
    ):
        ax.title.set_color(style.colour(variant))
    grid.legend.set_title("")
    # Below the panels, in one row: beside a single row of panels it would be taller than them.
    sns.move_legend(grid, "upper center", bbox_to_anchor=(0.5, 0.0), ncol=6, frameon=False)
    lines = [title, facets.setting(kept, ("lr",)), note]
    grid.figure.suptitle("\n".join(line for line in lines if line), y=1.0, fontsize=11)
    grid.figure.tight_layout()
    save(grid.figure, path)


def gradient_by_depth(layers: pd.DataFrame, path: str | Path, epoch: int | None = None) -> None:
    """The backward signal at each hidden layer (1 = next to the input), per activation.

    The measure is ``pre_activation_grad_rms`` (RMS of dL/dz over the training set) of the
    untrained network (epoch 0) where it was measured, else the weight-gradient norm of the
    first epoch. One panel per network depth (and per init, else per learning rate when there
    are several), log scale.
    """
    finished = layers[layers["final_status"] != "diverged"]
    column, epoch_shown = "grad_norm", 1 if epoch is None else epoch
    label = "mean ‖∂loss/∂W‖ over the epoch"
    if "pre_activation_grad_rms" in finished and finished["pre_activation_grad_rms"].notna().any():
        column, epoch_shown = "pre_activation_grad_rms", 0 if epoch is None else epoch
        label = "RMS of ∂loss/∂z over the training set"
    data = finished[finished["epoch"] == epoch_shown].dropna(subset=[column])
    heading = f"Backward signal by layer, epoch {epoch_shown}"
    if data.empty:
        _empty(path, heading, "No gradients were recorded.")
        return
    # Panels show depth, rows init (or lr); any other axis that varies goes into the label.
    row_axis = "init" if "init" in data and data["init"].nunique() > 1 else "lr"
    data = label_settings(data, shown=("activation", "zero_grad", "depth", row_axis))
    data = facets.merge_identical_twins(
        data, ["depth", row_axis], [column], order=("seed", "layer")
    )
    rows = sorted(data[row_axis].unique())
    depths = sorted(data["depth"].unique())

    def row_label(value) -> str:
        return f"{value} init" if row_axis == "init" else _lr_label(value)

    figure, axes = plt.subplots(
        len(rows),
        len(depths),
        figsize=(3.6 * len(depths) + 2.2, 3.2 * len(rows) + 0.4),
        squeeze=False,
        sharey=True,
    )
    for i, row in enumerate(rows):
        for j, depth in enumerate(depths):
            ax = axes[i][j]
            part = data[(data[row_axis] == row) & (data["depth"] == depth)]
            style.lines(ax, part, "layer", column)
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
            title = f"{depth} hidden layers"
            ax.set_title(title if len(rows) == 1 else f"{title}, {row_label(row)}", fontsize=9)
            ax.set_xlabel("hidden layer (1 = next to the input)")
            if j == 0 and len(rows) == 1:
                ax.set_ylabel(label)
    if len(rows) > 1:  # one label for the rows: each row's own would run into the next
        figure.supylabel(label)
    style.legend(figure, data["variant"])
    heading = f"{heading} (95 % interval over {facets.seeds_text(data)})"
    facets.title(figure, heading, data, ("depth", row_axis), y=1.04)
    figure.tight_layout()
    save(figure, path)


def _errorbars(ax, table: pd.DataFrame, x: str, metric: str, order: list[str], log_x: bool):
    """Mean ± 95 % interval of ``metric`` per variant against ``x``, variants side by side.

    Where no seed of a point reached the target (``reached`` is 0), the point is drawn as an
    open marker on the top edge, marked "never", instead of being left out.
    """
    offsets = np.linspace(-0.06, 0.06, len(order)) if len(order) > 1 else [0.0]
    never_seen = False
    for offset, variant in zip(offsets, order, strict=True):
        part = table[table["variant"] == variant].sort_values(x)
        if part.empty:
            continue
        xs = part[x].to_numpy(dtype=float)
        xs = xs * 10**offset if log_x else xs + offset * 5
        kwargs = style.line_kwargs(variant)
        ax.errorbar(
            xs,
            part[f"{metric}_mean"],
            yerr=part[f"{metric}_ci95"].fillna(0),
            capsize=2,
            **kwargs,
        )
        if "reached" in part and metric.endswith("_to_target"):
            never = (part["reached"] == 0).to_numpy()
            if never.any():
                never_seen = True
                ax.plot(
                    xs[never],
                    np.ones(never.sum()),
                    transform=ax.get_xaxis_transform(),
                    linestyle="none",
                    marker="x",
                    markersize=8,
                    markeredgewidth=2,
                    color=kwargs["color"],
                    clip_on=False,
                )
    if never_seen:
        ax.text(
            0.01,
            0.97,
            "x on the top edge: no seed reached the target",
            transform=ax.transAxes,
            fontsize=8,
            va="top",
        )
    if log_x:
        ax.set_xscale("log")
        ax.minorticks_off()
    values = sorted(table[x].unique())
    ax.set_xticks(values, [f"{v:g}" for v in values])
    if table[f"{metric}_mean"].isna().all():
        ax.text(0.5, 0.5, "no seed reached it", transform=ax.transAxes, ha="center")


def convergence(points: pd.DataFrame, main_ids, depth_ids, path: str | Path) -> None:
    """Area under the accuracy curve and epochs to target, by learning rate and by depth.

    ``points`` is the per-point convergence table; ``main_ids`` the main grid's points and
    ``depth_ids`` the depth study's (may be empty, then the depth panels are left out). The
    depth study has one panel per init. f'(0) twins whose numbers are the same at every
    learning rate (or depth) are drawn once.
    """
    values = ["auc_mean", "epochs_to_target_mean"]
    main = label_settings(points[points["point"].isin(set(main_ids))])
    main = facets.merge_identical_twins(main, ["lr"], values, order=())
    deep = label_settings(
        points[points["point"].isin(set(depth_ids))],
        shown=("activation", "zero_grad", "depth", "init"),
    )
    inits = sorted(deep["init"].unique()) if "init" in deep and deep["depth"].nunique() > 1 else []
    deep = facets.merge_identical_twins(deep, ["depth", "init"], values, order=())
    order = style.order([*main["variant"], *deep["variant"]])
    panels = 2 + len(inits)
    figure, axes = plt.subplots(1, panels, figsize=(4.8 * panels + 3.0, 4.4), squeeze=False)
    axes = axes[0]
    target = points["target"].iloc[0] if len(points) else float("nan")
    _errorbars(axes[0], main, "lr", "auc", style.order(main["variant"]), log_x=True)
    axes[0].set_xlabel("learning rate (log scale)")
    axes[0].set_ylabel("area under validation accuracy\n(mean accuracy over training)")
    axes[0].set_title("Speed and level of learning", fontsize=10)
    _errorbars(axes[1], main, "lr", "epochs_to_target", style.order(main["variant"]), log_x=True)
    axes[1].set_xlabel("learning rate (log scale)")
    axes[1].set_ylabel(f"epochs to reach {target:.0%} validation accuracy")
    axes[1].set_title("Epochs to target (seeds that reached it)", fontsize=10)
    for ax, init in zip(axes[2:], inits, strict=True):
        part = deep[deep["init"] == init]
        _errorbars(ax, part, "depth", "auc", style.order(part["variant"]), log_x=False)
        ax.set_xlabel("hidden layers")
        ax.set_ylabel("area under validation accuracy")
        lrs = ", ".join(f"{v:g}" for v in sorted(part["lr"].unique()))
        ax.set_title(f"Deeper networks, {init} init (lr {lrs})", fontsize=10)
    style.legend(figure, order, ncol=2 if len(order) > 12 else 1, fontsize=8)
    heading = "Convergence (95 % interval over seeds; diverged seeds left out)"
    facets.title(figure, heading, main, ("lr",), y=1.0)
    figure.tight_layout()
    save(figure, path)


# The cost figure's measures: column -> axis label. One panel per measure, device and tensor
# size (each on its own linear scale), so that a new measure (e.g. a whole training step) is
# one more entry.
COST_MEASURES = {"ns_per_element": "forward + backward, ns per element (median over repeats)"}


def cost(table: pd.DataFrame, path: str | Path, measures: dict | None = None) -> None:
    """Activation cost per variant, as bars in the activation's colour on a linear scale, one
    panel per measure (``COST_MEASURES``), device and tensor size; PyTorch's own ReLU is the
    dashed reference line. The null comparison (a second torch.relu) is a check of the
    timing's noise, not a variant, and is left out."""
    measures = {
        key: label
        for key, label in (measures or COST_MEASURES).items()
        if key in table and table[key].notna().any()
    }
    table = table[~table["variant"].astype(str).str.endswith("(null)")]
    devices = list(dict.fromkeys(table["device"]))
    sizes = sorted(table["elements"].unique())
    panels = [(m, d, n) for m in measures for d in devices for n in sizes]
    order = style.order(table["variant"])
    columns = len(sizes)
    rows = len(panels) // columns
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(4.2 * columns + 1.0, (0.28 * len(order) + 1.4) * rows + 0.8),
        squeeze=False,
        sharey=True,
    )
    for ax, (measure, device, elements) in zip(axes.flat, panels, strict=True):
        part = table[(table["device"] == device) & (table["elements"] == elements)]
        part = part.set_index("variant").reindex(order)
        values = part[measure].to_numpy(dtype=float)
        ax.barh(np.arange(len(order)), values, color=[style.colour(v) for v in order], height=0.7)
        if "torch.relu" in part.index and np.isfinite(part.loc["torch.relu", measure]):
            ax.axvline(part.loc["torch.relu", measure], color="black", linestyle="--", linewidth=1)
        ax.set_yticks(np.arange(len(order)), order)
        style.colour_tick_labels(ax.get_yticklabels())
        ax.set_ylim(len(order) - 0.5, -0.5)  # grid order from the top (axes are shared)
        precision = part["precision"].dropna().iloc[0] if part["precision"].notna().any() else ""
        ax.set_title(f"{device}, {precision}, {elements:,} elements", fontsize=9)
        ax.set_xlabel(measures[measure], fontsize=8)
    heading = "Activation cost (dashed: torch.relu; one thread on the CPU)"
    figure.suptitle(heading, fontsize=11)
    figure.tight_layout()
    save(figure, path)


def born_dead(table: pd.DataFrame, path: str | Path) -> None:
    """Untrained ReLU MLPs against depth, one line per width, one column per init: the
    fraction of networks born dead and the mean dead fraction of hidden units, each with its
    95 % interval as error bars (widths side by side, so that they do not hide each other)."""
    inits = list(dict.fromkeys(table["init"]))
    figure, axes = plt.subplots(
        2, len(inits), figsize=(5 * len(inits) + 1.6, 7), squeeze=False, sharey=True
    )
    widths = sorted(table["width"].unique())
    palette = dict(zip(widths, style.sequential(len(widths)), strict=True))
    offsets = np.linspace(-0.08, 0.08, len(widths)) if len(widths) > 1 else [0.0]
    for column, init in enumerate(inits):
        part = table[table["init"] == init]
        top, bottom = axes[0][column], axes[1][column]
        for offset, width in zip(offsets, widths, strict=True):
            rows = part[part["width"] == width].sort_values("depth")
            if rows.empty:
                continue
            colour = palette[width]
            xs = rows["depth"].to_numpy(dtype=float) * 2**offset
            fraction = rows["network_dead_fraction"].to_numpy(dtype=float)
            top.errorbar(
                xs,
                fraction,
                yerr=[
                    fraction - rows["network_dead_ci_low"].to_numpy(dtype=float),
                    rows["network_dead_ci_high"].to_numpy(dtype=float) - fraction,
                ],
                fmt="o-",
                capsize=2,
                color=colour,
                label=f"width {width}",
            )
            bottom.errorbar(
                xs,
                rows["dead_fraction_mean"],
                yerr=rows["dead_fraction_ci95"],
                fmt="o-",
                capsize=2,
                color=colour,
                label=f"width {width}",
            )
        for ax in axes[:, column]:
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("hidden layers")
        axes[0][column].set_title(f"{init} init: networks born dead", fontsize=10)
        axes[1][column].set_title(f"{init} init: hidden units dead", fontsize=10)
    axes[0][0].set_ylabel("fraction of networks (95 % Wilson)")
    axes[1][0].set_ylabel("dead fraction of units (95 % interval)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.9), fontsize=8)
    networks = int(table["networks"].max()) if "networks" in table else None
    each = f", {networks} networks per point" if networks else ""
    figure.suptitle(
        "Untrained ReLU MLPs (f'(0) plays no part), dead at initialisation"
        f"{each}\n(Lu et al. 2019: deep narrow nets are born dead)",
        fontsize=11,
    )
    figure.tight_layout()
    save(figure, path)
