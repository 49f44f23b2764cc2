"""The cost of a whole training step per activation, relative to PyTorch's ReLU.

One panel per optimizer: each variant's median step time over the reference's, with its
distribution-free 95 % interval; the grey band is the null's interval (a second ReLU model
timed like any other) widened to include 1, inside which a ratio is noise.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from relulab.experiments import machine
from relulab.experiments.cost import NULL
from relulab.figures import style
from relulab.figures.style import save


def plot(table: pd.DataFrame, path: str | Path) -> None:
    """Ratio to torch.relu per variant (rows), one panel per optimizer (columns)."""
    optimizers = list(dict.fromkeys(table["optimizer"]))
    order = list(dict.fromkeys(table["variant"]))
    figure, axes = plt.subplots(
        1,
        len(optimizers),
        figsize=(1.5 + 3.4 * len(optimizers), 0.3 * len(order) + 2),
        squeeze=False,
        sharey=True,
    )
    for ax, optimizer in zip(axes[0], optimizers, strict=True):
        part = table[table["optimizer"] == optimizer].set_index("variant").loc[order]
        null = part.loc[NULL] if NULL in part.index else None
        if null is not None:
            low, high = min(1.0, null["ratio_low"]), max(1.0, null["ratio_high"])
            ax.axvspan(low, high, color="0.88", linewidth=0, label="null's interval")
        ax.axvline(1.0, color="0.5", linewidth=0.8)
        ys = range(len(order))
        for y, (label, row) in zip(ys, part.iterrows(), strict=True):
            colour = style.colour(label) if label != NULL else "0.4"
            ratio = row["ratio_to_relu"]
            ax.errorbar(
                [ratio],
                [y],
                xerr=[[ratio - row["ratio_low"]], [row["ratio_high"] - ratio]],
                fmt="o",
                color=colour,
                capsize=2,
                markersize=4,
            )
        ax.set_yticks(list(ys), order)
        ax.invert_yaxis()
        ax.set_title(optimizer)
    style.colour_tick_labels(axes[0][0].get_yticklabels())
    figure.supxlabel("step time / torch.relu's step time (median, 95 %)", fontsize=10)
    first = table.iloc[0]
    figure.suptitle(
        f"A whole training step (forward, backward, optimizer) at batch {first['batch_size']}, "
        f"{first['depth']}x{first['width']}, {first['in_features']} inputs\n"
        f"{machine.describe(first.to_dict())}",
        fontsize=9,
    )
    figure.tight_layout()
    save(figure, path)
