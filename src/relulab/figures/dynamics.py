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

from relulab.figures import style
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
    """Variants with at least one unit dead at some measurement of some finished seed."""
    finished = layers[layers["final_status"] != "diverged"]
    died = finished.groupby("variant")["ever_dead_fraction"].max()
    return style.order(died[died > 0].index)


def death_over_time(layers: pd.DataFrame, path: str | Path) -> None:
    """Dead fraction of all hidden units over epochs, with the revived share stacked on top.

    One row per activation variant in which any unit died, one column per learning rate; the
    stack (dead now + revived) is the fraction that was ever dead, and the dashed line the
    fraction dead at every measurement since it first died. Means over finished seeds; the
    band around the top of "dead now" is its 95 % interval over seeds.
    """
    title = "Dead hidden units over training"
    shown = variants_that_died(layers)
    if not shown:
        _empty(path, title, "No unit died in any run of the main grid.")
        return
    whole = dynamics.network(layers[layers["variant"].isin(shown)])
    whole = whole[whole["final_status"] != "diverged"]
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
        figsize=(3.2 * len(lrs) + 1.5, 2.4 * len(shown) + 0.6),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    colours = style.MEASURE_COLOURS
    for i, variant in enumerate(shown):
        for j, lr in enumerate(lrs):
            ax = axes[i][j]
            part = mean[(mean["variant"] == variant) & (mean["lr"] == lr)].sort_values("epoch")
            if part.empty:
                ax.set_visible(False)
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
            ax.fill_between(
                band["epoch"],
                band["low"],
                band["high"],
                color=style.colour(variant),
                alpha=0.35,
                linewidth=0,
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
            ax.set_title(f"{variant}, {_lr_label(lr)}", fontsize=9, color=style.colour(variant))
            if j == 0:
                ax.set_ylabel("fraction of hidden units")
            if i == len(shown) - 1:
                ax.set_xlabel("epoch (0 = initialisation)")
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.02))
    figure.suptitle(f"{title} (mean over seeds; band: 95 % interval of dead now)")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    save(figure, path)


def death_by_layer(layers: pd.DataFrame, path: str | Path) -> None:
    """Dead and revived fraction over epochs, first hidden layer against the deeper ones."""
    title = "Dead units by layer: first hidden layer against deeper layers"
    shown = variants_that_died(layers)
    if not shown:
        _empty(path, title, "No unit died in any run of the main grid.")
        return
    groups = dynamics.by_layer_group(layers[layers["variant"].isin(shown)])
    groups = groups[groups["final_status"] != "diverged"]
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
        height=2.4,
        aspect=1.4,
    )
    grid.set_axis_labels("epoch (0 = initialisation)", "fraction of units")
    grid.set_titles("{row_name}, {col_name}", size=9)
    for (variant, _), ax in zip(
        [(v, c) for v in shown for c in order], grid.axes.flat, strict=True
    ):
        ax.title.set_color(style.colour(variant))
    grid.legend.set_title("")
    grid.figure.suptitle(title, y=1.01)
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
    figure.suptitle(f"{heading} (95 % interval over seeds)", y=1.02)
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
    ``depth_ids`` the depth study's (may be empty, then the third panel is left out).
    """
    main = label_settings(points[points["point"].isin(set(main_ids))])
    deep = label_settings(
        points[points["point"].isin(set(depth_ids))], shown=("activation", "zero_grad", "depth")
    )
    order = style.order([*main["variant"], *deep["variant"]])
    panels = 3 if deep["depth"].nunique() > 1 else 2
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels + 2.5, 4.4), squeeze=False)
    axes = axes[0]
    target = points["target"].iloc[0] if len(points) else float("nan")
    _errorbars(axes[0], main, "lr", "auc", order, log_x=True)
    axes[0].set_xlabel("learning rate (log scale)")
    axes[0].set_ylabel("area under validation accuracy\n(mean accuracy over training)")
    axes[0].set_title("Speed and level of learning")
    _errorbars(axes[1], main, "lr", "epochs_to_target", order, log_x=True)
    axes[1].set_xlabel("learning rate (log scale)")
    axes[1].set_ylabel(f"epochs to reach {target:.0%} validation accuracy")
    axes[1].set_title("Epochs to target (seeds that reached it)")
    if panels == 3:
        _errorbars(axes[2], deep, "depth", "auc", order, log_x=False)
        axes[2].set_xlabel("hidden layers")
        axes[2].set_ylabel("area under validation accuracy")
        lrs = ", ".join(f"{v:g}" for v in sorted(deep["lr"].unique()))
        axes[2].set_title(f"As networks get deeper (lr {lrs})")
    style.legend(figure, order)
    figure.suptitle("Convergence (95 % interval over seeds; diverged seeds left out)")
    figure.tight_layout()
    save(figure, path)


def cost(table: pd.DataFrame, path: str | Path) -> None:
    """Forward + backward nanoseconds per element for every variant, one panel per device."""
    devices = list(dict.fromkeys(table["device"]))
    order = style.order(table["variant"])
    figure, axes = plt.subplots(
        1, len(devices), figsize=(7 * len(devices), 0.32 * len(order) + 1.8), squeeze=False
    )
    for ax, device in zip(axes[0], devices, strict=True):
        part = table[table["device"] == device].copy()
        part["size"] = part["elements"].map(lambda n: f"{n:,} elements")
        sns.barplot(
            data=part,
            y="variant",
            x="ns_per_element",
            hue="size",
            order=order,
            palette="Greys",
            ax=ax,
            orient="h",
        )
        style.colour_tick_labels(ax.get_yticklabels())
        ax.set_xscale("log")
        # Plain numbers at 1, 2, 5 x 10^k: the default minor labels overlap on a short range.
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("forward + backward, ns per element (median, log scale)")
        ax.set_ylabel("")
        precision = part["precision"].iloc[0]
        ax.set_title(f"Activation cost on {device} ({precision})")
        ax.legend(title="tensor size", loc="lower right", fontsize=8)
    figure.tight_layout()
    save(figure, path)


def born_dead(table: pd.DataFrame, path: str | Path) -> None:
    """Untrained ReLU MLPs against depth, one line per width, one column per init: the
    fraction of networks born dead (Wilson band) and the mean dead fraction of hidden units."""
    inits = list(dict.fromkeys(table["init"]))
    figure, axes = plt.subplots(2, len(inits), figsize=(5 * len(inits), 7), squeeze=False)
    widths = sorted(table["width"].unique())
    palette = dict(zip(widths, style.sequential(len(widths)), strict=True))
    for column, init in enumerate(inits):
        part = table[table["init"] == init]
        for width, rows in part.groupby("width"):
            rows = rows.sort_values("depth")
            colour = palette[width]
            top, bottom = axes[0][column], axes[1][column]
            top.plot(
                rows["depth"],
                rows["network_dead_fraction"],
                "o-",
                color=colour,
                label=f"width {width}",
            )
            top.fill_between(
                rows["depth"],
                rows["network_dead_ci_low"],
                rows["network_dead_ci_high"],
                color=colour,
                alpha=0.15,
            )
            bottom.errorbar(
                rows["depth"],
                rows["dead_fraction_mean"],
                yerr=rows["dead_fraction_ci95"],
                fmt="o-",
                color=colour,
                label=f"width {width}",
            )
        for ax in axes[:, column]:
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("hidden layers")
        axes[0][column].set_title(f"{init} init: networks born dead")
        axes[1][column].set_title(f"{init} init: hidden units dead")
    axes[0][0].set_ylabel("fraction of networks (95 % Wilson)")
    axes[1][0].set_ylabel("dead fraction of units (95 % interval)")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    figure.suptitle("Untrained ReLU MLPs (Lu et al. 2019: deep narrow nets are born dead)")
    figure.tight_layout()
    save(figure, path)
