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

from relulab.figures import style
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


def no_finished_seeds(path: str | Path, title: str) -> None:
    """The figure ``path`` when every seed diverged: a diverged run is a result, so the figure
    exists and says so (the tables count the diverged seeds)."""
    figure, ax = plt.subplots(figsize=(7, 2.5))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(
        0.5,
        0.5,
        "every seed diverged: no finished run to draw\n"
        "(diverged_fraction in results/tables/summary.csv)",
        ha="center",
        va="center",
        transform=ax.transAxes,
    )
    save(figure, path)


def _lr_label(lr: float) -> str:
    return f"lr = {lr:g}"


def dead_heatmap(summary: pd.DataFrame, path: str | Path, value: str = "dead_fraction_mean"):
    """Final dead fraction, activation (x f'(0), x every other axis that varies) by learning
    rate; each cell reads "mean ± half-width of the 95 % interval over seeds".

    One cell per grid point: ``pivot`` refuses two points in one cell, so nothing is averaged.
    """
    rows = style.order(summary["variant"])
    half_column = value.replace("_mean", "_ci95")
    figure, ax = plt.subplots(figsize=(2.6 + 1.6 * summary["lr"].nunique(), 0.5 * len(rows) + 2))
    grid = summary.pivot(index="variant", columns="lr", values=value).reindex(rows)
    half = summary.pivot(index="variant", columns="lr", values=half_column)
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
    ax.set_title("Dead units after training (± 95 % interval)")
    save(figure, path)


def _cell(mean: float, half: float) -> str:
    """A heatmap cell: ``0.42±0.05``, the mean alone where the interval is unknown."""
    if not math.isfinite(mean):
        return ""
    return f"{mean:.2f}" if not math.isfinite(half) else f"{mean:.2f}±{half:.2f}"


def over_epochs(
    epochs: pd.DataFrame, metric: str, label: str, path: str | Path, log_y: bool = False
) -> None:
    """``metric`` against epoch, one line per activation variant, one panel per learning rate."""
    data = _finished(epochs)
    if data.empty:
        no_finished_seeds(path, f"{label} against epoch")
        return
    lrs = sorted(data["lr"].unique())
    columns = min(3, len(lrs))
    rows = -(-len(lrs) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.1 * columns, 3.4 * rows), sharey=True, squeeze=False
    )
    for ax, lr in zip(axes.flat, lrs, strict=False):
        style.lines(ax, data[data["lr"] == lr], "epoch", metric)
        ax.set_title(_lr_label(lr))
        ax.set_xlabel("epoch (0 = initialisation)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if log_y:
            ax.set_yscale("log")
    for ax in axes.flat[len(lrs) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(label)
    style.legend(figure, data["variant"])
    figure.suptitle(f"{label} over training (mean, 95 % interval over seeds)")
    figure.tight_layout()
    save(figure, path)


def final_accuracy_vs_lr(summary_epochs: pd.DataFrame, path: str | Path) -> None:
    """Final validation accuracy against the learning rate (log axis), one line per variant."""
    data = _finished(summary_epochs)
    if data.empty:
        no_finished_seeds(path, "Final accuracy against learning rate")
        return
    figure, ax = plt.subplots(figsize=(7, 4.5))
    style.lines(ax, data, "lr", "val_accuracy")
    ax.set_xscale("log")
    # One labelled tick per learning rate of the grid, written as in the config.
    rates = sorted(data["lr"].unique())
    ax.set_xticks(rates, [f"{rate:g}" for rate in rates])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("validation accuracy, final epoch")
    ax.set_title("Final accuracy against learning rate (95 % interval over seeds)")
    style.legend(ax, data["variant"], loc="upper left", bbox_to_anchor=(1.02, 1))
    save(figure, path)
