"""The bifurcation figure: fraction of initialisations whose gradient differs, against exposure.

A fraction is only comparable at a stated exposure (pre-activations per initialisation), so
the x axis is exposure. Per precision, one panel: each measured cell is a point with its
Wilson 95 % interval, and the curve ``1 - exp(-rate * N)`` its rate predicts (band: the rate's
Garwood 95 % interval; dotted, its upper bound, where no exact zero was seen) carries it to
every other exposure; the paper's points sit at their own exposure, labelled with their
dataset and device, in the panel of their precision only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from relulab.experiments.bifurcation import PAPER_POINTS, PRECISIONS, predicted_fraction
from relulab.figures import study as plots

# Every colour and marker of this figure.
PALETTE = "colorblind"
PAPER_COLOUR = "black"
PAPER_MARKER = "D"
MEASURED_MARKER = "o"


def cell_label(row: pd.Series, varying: list[str]) -> str:
    """``3x256`` (depth x width), plus the cell settings that vary across the table."""
    label = f"{int(row['depth'])}x{int(row['width'])}"
    for column in varying:
        label += f", {row[column]}"
    return label


def _varying(summary: pd.DataFrame) -> list[str]:
    columns = ["dataset", "inputs", "compare", "device", "batch_size"]
    return [c for c in columns if c in summary and summary[c].nunique() > 1]


def _exposure_range(summary: pd.DataFrame, precisions: list[str]) -> np.ndarray:
    exposures = list(summary["pre_activations_per_init"].astype(float))
    exposures += [p.pre_activations_per_init for p in PAPER_POINTS if p.precision in precisions]
    low, high = min(exposures) / 10, max(exposures) * 10
    return np.geomspace(low, high, 200)


def plot(summary: pd.DataFrame, path: str | Path) -> None:
    """One panel per precision: measured fractions, predicted curves, the paper's points."""
    import matplotlib.pyplot as plt

    present = set(summary["precision"])
    precisions = [p for p in PRECISIONS if p in present] + sorted(present - set(PRECISIONS))
    varying = _varying(summary)
    labels = [cell_label(row, varying) for _, row in summary.iterrows()]
    summary = summary.assign(cell=labels)
    cells = list(dict.fromkeys(labels))
    colours = dict(zip(cells, plots.sns.color_palette(PALETTE, n_colors=len(cells)), strict=True))
    grid = _exposure_range(summary, precisions)
    figure, axes = plt.subplots(
        1, len(precisions), figsize=(1 + 3.6 * len(precisions), 5), squeeze=False, sharey=True
    )
    for ax, precision in zip(axes[0], precisions, strict=True):
        for _, row in summary[summary["precision"] == precision].iterrows():
            colour = colours[row["cell"]]
            exposure, fraction = float(row["pre_activations_per_init"]), row["fraction_differ"]
            high = [predicted_fraction(row["exact_zero_rate_ci_high"], n) for n in grid]
            if row["exact_zeros"] > 0:
                curve = [predicted_fraction(row["exact_zero_rate"], n) for n in grid]
                low = [predicted_fraction(row["exact_zero_rate_ci_low"], n) for n in grid]
                ax.plot(grid, curve, color=colour, linewidth=1.2)
                ax.fill_between(grid, low, high, color=colour, alpha=0.12, linewidth=0)
            else:  # no exact zero seen: only the upper bound is known
                ax.plot(grid, high, color=colour, linewidth=1, linestyle=":")
            ax.errorbar(
                [exposure],
                [fraction],
                yerr=[[fraction - row["ci_low"]], [row["ci_high"] - fraction]],
                fmt=MEASURED_MARKER,
                color=colour,
                capsize=3,
                label=f"{row['cell']}: {int(row['differ'])}/{int(row['inits'])}",
            )
        for point in PAPER_POINTS:
            if point.precision != precision:
                continue
            ax.scatter(
                [point.pre_activations_per_init],
                [point.fraction_differ],
                marker=PAPER_MARKER,
                color=PAPER_COLOUR,
                zorder=4,
                label=f"{point.label}, {point.depth}x{point.width}",
            )
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.05)
        ax.set_title(precision)
        ax.set_xlabel("pre-activations per initialisation")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    axes[0][0].set_ylabel("initialisations whose gradient differs")
    datasets = ", ".join(str(d) for d in summary["dataset"].unique())
    figure.suptitle(
        f"ReLU'(0)=0 vs 1 against exposure ({datasets}; points: measured, 95 % Wilson; "
        "lines: 1 - exp(-rate x N), 95 % Garwood band; dotted: upper bound where no zero was seen)",
        fontsize=10,
    )
    figure.tight_layout()
    plots.save(figure, path)
