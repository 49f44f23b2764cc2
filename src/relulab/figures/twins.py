"""The zero_grad twins figure: where f'(0)=0 and another value part, and what it does to accuracy.

Drawn from ``relulab.tables.twins.effect_table``'s rows; the table module computes, this one
draws.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from relulab.experiments.bifurcation import PRECISIONS
from relulab.figures import facets, style
from relulab.figures import study as plots
from relulab.tables.twins import AXES


def _setting(table: pd.DataFrame) -> pd.Series:
    """A label per row: the variant, plus the axes that vary in the table (besides lr and
    precision, which the figure shows itself)."""
    extra = [
        a
        for a in AXES
        if a not in ("activation", "lr", "precision") and a in table and table[a].nunique() > 1
    ]
    labels = table["variant"].astype(str)
    for axis in extra:
        labels = labels + ", " + axis + "=" + table[axis].astype(str)
    return labels


def plot(table: pd.DataFrame, path: str | Path) -> None:
    """Fraction of seeds whose trajectory departs from the f'(0)=0 twin (Wilson 95 %) and
    the paired final-accuracy difference (Student t 95 % over seeds); one column per
    precision, one colour per learning rate."""
    if table.empty:
        figure, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            "No zero_grad twins in this study:\nthe grid needs a kinked activation at zero_grad 0 "
            "and another value.",
            ha="center",
            va="center",
        )
        plots.save(figure, path)
        return
    table = table.assign(setting=_setting(table))
    present = set(table["precision"])
    precisions = [p for p in PRECISIONS if p in present] + sorted(present - set(PRECISIONS))
    # Each precision's panel shows its own settings, its width in proportion to their count.
    settings_of = {
        p: style.order(table.loc[table["precision"] == p, "setting"]) for p in precisions
    }
    counts = [max(len(settings_of[p]), 1) for p in precisions]
    lrs = sorted(table["lr"].unique())
    colours = style.learning_rate_colours(lrs)  # a quantity: greys, never an activation's
    figure, axes = plt.subplots(
        2,
        len(precisions),
        figsize=(3 + 1.2 * max(sum(counts), 2), 6.5),
        squeeze=False,
        sharey="row",
        gridspec_kw={"width_ratios": counts},
    )
    width = 0.7 / max(len(lrs), 1)
    for c, precision in enumerate(precisions):
        part = table[table["precision"] == precision]
        settings = settings_of[precision]
        for i, lr in enumerate(lrs):
            rows = part[part["lr"] == lr].set_index("setting").reindex(settings)
            x = np.arange(len(settings)) + (i - (len(lrs) - 1) / 2) * width
            fraction = rows["fraction_departed"].to_numpy(dtype=float)
            axes[0][c].errorbar(
                x,
                fraction,
                yerr=[
                    fraction - rows["departed_ci_low"].to_numpy(dtype=float),
                    rows["departed_ci_high"].to_numpy(dtype=float) - fraction,
                ],
                fmt="o",
                capsize=3,
                color=colours[lr],
                label=f"lr = {lr:g}",
            )
            difference = rows["accuracy_difference_mean"].to_numpy(dtype=float)
            axes[1][c].errorbar(
                x,
                difference,
                yerr=[
                    difference - rows["accuracy_difference_ci_low"].to_numpy(dtype=float),
                    rows["accuracy_difference_ci_high"].to_numpy(dtype=float) - difference,
                ],
                fmt="o",
                capsize=3,
                color=colours[lr],
            )
        axes[0][c].set_title(precision)
        axes[0][c].set_ylim(-0.05, 1.05)
        axes[1][c].axhline(0, color="grey", linewidth=0.8)
        axes[0][c].set_xticks(np.arange(len(settings)), [])
        axes[1][c].set_xticks(np.arange(len(settings)), settings, rotation=35, ha="right")
        for ax in (axes[0][c], axes[1][c]):
            ax.set_xlim(-0.6, len(settings) - 0.4)
    axes[0][0].set_ylabel("seeds departing from\nthe f'(0)=0 twin")
    axes[1][0].set_ylabel("final val accuracy,\ntwin minus f'(0)=0")
    axes[0][-1].legend(title="learning rate", bbox_to_anchor=(1.02, 1), loc="upper left")
    facets.title(
        figure,
        "Does f'(0) change training? Paired seeds, 95 % intervals",
        table,
        shown=("activation", "zero_grad", "lr", "precision"),
    )
    figure.tight_layout()
    plots.save(figure, path)
