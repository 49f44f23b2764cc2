"""Figures of a study's grid, each saved as PNG and SVG.

Colours, line styles, legend order and bands come from ``relulab.figures.style``. Diverged
seeds are left out of the curves (their metrics are not numbers); the tables count them. Bands
and the ± in the heatmap are 95 % intervals over seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns  # noqa: F401 - relulab.tables.twins reaches seaborn through this module
from matplotlib.ticker import MaxNLocator, NullFormatter

from relulab.figures import facets, style
from relulab.figures.style import save  # noqa: F401 - the figure modules' one ``save``
from relulab.tables.summary import mean_ci95


def t_interval(values) -> tuple[float, float]:
    """The band of a seaborn line: the Student-t 95 % interval over seeds, as in the tables
    (and quick: seaborn's default bootstrap resamples a thousand times per point and epoch)."""
    mean, half = mean_ci95(values)
    return mean - half, mean + half


BAND = t_interval


def _finished(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["final_status"] != "diverged"]


NO_FINISHED_SEED = (
    "every seed diverged: no finished run to draw\n"
    "(diverged_fraction in results/tables/summary.csv)"
)


def no_finished_seeds(path: str | Path, title: str, message: str = NO_FINISHED_SEED) -> None:
    """The figure ``path`` when every seed diverged: a diverged run is a result, so the figure
    exists and says so (the tables count the diverged seeds). ``message`` says why else a
    figure has nothing to draw."""
    figure, ax = plt.subplots(figsize=(7, 2.5))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(
        0.5,
        0.5,
        message,
        ha="center",
        va="center",
        transform=ax.transAxes,
    )
    save(figure, path)


def _lr_label(lr: float) -> str:
    return f"lr = {lr:g}"


def _in_family(data: pd.DataFrame, name: str) -> pd.Series:
    return data["variant"].map(facets.family) == name


def dead_heatmap(summary: pd.DataFrame, path: str | Path, value: str = "dead_fraction_mean"):
    """Final dead fraction, activation (x f'(0), x every other axis that varies) by learning
    rate; each cell reads "mean ± half-width of the 95 % interval over seeds".

    One cell per grid point: ``pivot`` refuses two points in one cell, so nothing is averaged.
    Activations that cannot die are left out (their rows would be zeros by definition), and
    f'(0) twins whose every cell is bitwise the same are one row.
    """
    half_column = value.replace("_mean", "_ci95")
    shown = summary[summary["variant"].map(facets.can_die)]
    shown = facets.merge_identical_twins(shown, ["lr"], [value, half_column], order=())
    rows = style.order(shown["variant"])
    figure, ax = plt.subplots(figsize=(3.4 + 1.6 * shown["lr"].nunique(), 0.5 * len(rows) + 2.4))
    grid = shown.pivot(index="variant", columns="lr", values=value).reindex(rows)
    half = shown.pivot(index="variant", columns="lr", values=half_column)
    half = half.reindex(index=grid.index, columns=grid.columns)
    labels = np.vectorize(_cell)(grid.to_numpy(), half.to_numpy())
    grid.columns = [f"{c:g}" for c in grid.columns]
    sns.heatmap(
        grid,
        ax=ax,
        annot=labels,
        fmt="",
        annot_kws={"fontsize": 8},
        vmin=0,
        vmax=1,
        cmap="rocket_r",
        cbar_kws={"label": "dead fraction (final epoch, mean over seeds)"},
    )
    style.colour_tick_labels(ax.get_yticklabels())
    ax.set_xlabel("learning rate")
    ax.set_ylabel("activation")
    note = facets.left_out_note(summary["variant"], shown["variant"])
    heading = "Dead units after training (± 95 % interval over seeds)"
    facets.title(figure, heading, summary, ("lr",), note)
    figure.tight_layout()
    save(figure, path)


def _cell(mean: float, half: float) -> str:
    """A heatmap cell: ``0.42±0.05``, the mean alone where the interval is unknown."""
    if not math.isfinite(mean):
        return ""
    return f"{mean:.2f}" if not math.isfinite(half) else f"{mean:.2f}±{half:.2f}"


def over_epochs(
    epochs: pd.DataFrame,
    metric: str,
    label: str,
    path: str | Path,
    log_y: bool = False,
    deaths: bool = False,
) -> None:
    """``metric`` against epoch as small multiples: one row per activation (its f'(0) variants
    in one panel, bitwise twins drawn once), one column per learning rate.

    ``deaths``: a death figure, which leaves out activations that cannot die and those in
    which no visible fraction ever died (``facets.visibly_dead``).
    """
    data = _finished(epochs)
    if data.empty:
        no_finished_seeds(path, f"{label} against epoch")
        return
    data = facets.merge_identical_twins(data, ["lr"], [metric])
    note = ""
    if deaths:
        kept = facets.visibly_dead(data, metric)
        note = facets.left_out_note(data["variant"], kept)
        data = data[data["variant"].isin(kept)]
        if data.empty:
            message = f"No visible fraction of units died in any run.\n{note}"
            no_finished_seeds(path, f"{label} against epoch", message)
            return
    rows = facets.families(data["variant"])
    lrs = sorted(data["lr"].unique())
    figure, axes = plt.subplots(
        len(rows),
        len(lrs),
        figsize=(3.0 * len(lrs) + 2.6, 1.9 * len(rows) + 1.3),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for i, name in enumerate(rows):
        for j, lr in enumerate(lrs):
            ax = axes[i][j]
            style.lines(ax, data[_in_family(data, name) & (data["lr"] == lr)], "epoch", metric)
            title = f"{facets.family_title(name, data['variant'].unique())}, {_lr_label(lr)}"
            ax.set_title(title, fontsize=9, color=style.colour(name))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if log_y:
                ax.set_yscale("log")
    for ax in axes[-1]:
        ax.set_xlabel("epoch (0 = initialisation)")
    figure.supylabel(label)
    figure.legend(
        handles=style.zero_grad_legend_handles(data["variant"]),
        loc="upper left",
        bbox_to_anchor=(1.0, 0.9),
        fontsize=8,
    )
    heading = f"{label} over training (mean, 95 % interval over {facets.seeds_text(data)})"
    facets.title(figure, heading, data, ("lr",), note)
    figure.tight_layout()
    save(figure, path)


def final_accuracy_vs_lr(summary_epochs: pd.DataFrame, path: str | Path) -> None:
    """Final validation accuracy against the learning rate (log axis), one panel per
    activation with its f'(0) variants (bitwise twins drawn once)."""
    data = _finished(summary_epochs)
    if data.empty:
        no_finished_seeds(path, "Final accuracy against learning rate")
        return
    data = facets.merge_identical_twins(data, ["lr"], ["val_accuracy"], order=("seed",))
    panels = facets.families(data["variant"])
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(3.3 * columns + 2.4, 2.6 * rows + 1.2),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    rates = sorted(data["lr"].unique())
    for ax, name in zip(axes.flat, panels, strict=False):
        style.lines(ax, data[_in_family(data, name)], "lr", "val_accuracy")
        ax.set_xscale("log")
        # One labelled tick per learning rate of the grid, written as in the config.
        ax.set_xticks(rates, [f"{rate:g}" for rate in rates])
        ax.xaxis.set_minor_formatter(NullFormatter())
        title = facets.family_title(name, data["variant"].unique())
        ax.set_title(title, fontsize=9, color=style.colour(name))
        ax.tick_params(labelbottom=True)  # the panel below may be left out
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    figure.supxlabel("learning rate (log scale)")
    figure.supylabel("validation accuracy, final epoch")
    figure.legend(
        handles=style.zero_grad_legend_handles(data["variant"]),
        loc="upper left",
        bbox_to_anchor=(1.0, 0.9),
        fontsize=8,
    )
    heading = f"Final accuracy against learning rate (95 % interval over {facets.seeds_text(data)})"
    facets.title(figure, heading, data, ("lr",))
    figure.tight_layout()
    save(figure, path)
