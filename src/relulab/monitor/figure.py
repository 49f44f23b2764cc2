"""The monitor's figures: dead and inactive fractions per layer, and over a monitored run."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from relulab.figures import style

# Per-layer fractions drawn, with their legend labels.
FRACTIONS = {
    "dead_fraction": "dead (as training computes)",
    "dead_at_inference_fraction": "dead at inference",
    "inactive_fraction": "inactive",
}
# Layer numbers are categories on the bar chart's axis; matplotlib logs a note for each.
logging.getLogger("matplotlib.category").setLevel(logging.WARNING)


def layer_figure(layers: pd.DataFrame, path: str | Path) -> Path:
    """Bars of each layer's dead, dead-at-inference and inactive fractions, one check."""
    import seaborn as sns

    long = layers.melt(
        id_vars=["layer"], value_vars=list(FRACTIONS), var_name="measure", value_name="fraction"
    )
    long["measure"] = long["measure"].map(FRACTIONS)
    figure, ax = style.plt.subplots(figsize=(max(5.0, 0.45 * len(layers) + 2), 3.2))
    sns.barplot(long, x="layer", y="fraction", hue="measure", ax=ax, palette="colorblind")
    ax.set_ylim(0, 1)
    ax.set_xlabel("layer (activation calls in forward order)")
    ax.set_ylabel("fraction of units")
    ax.legend(frameon=False, fontsize="small")
    style.save(figure, path)
    return Path(path)


def run_figure(layers: pd.DataFrame, path: str | Path, metric: str = "dead_fraction") -> Path:
    """One line per layer of ``metric`` over the checks of a run (``layers``: all checks)."""
    import seaborn as sns

    figure, ax = style.plt.subplots(figsize=(6, 3.4))
    palette = style.sequential(layers["layer"].nunique())
    sns.lineplot(
        layers, x="step", y=metric, hue="layer", palette=palette, marker="o", ax=ax, legend="full"
    )
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_xlabel("training step")
    ax.legend(title="layer", frameon=False, fontsize="small", ncols=2)
    style.save(figure, path)
    return Path(path)


def main(argv: list[str] | None = None) -> None:
    """``python -m relulab.monitor.figure LAYERS_CSV PNG [METRIC]``: a monitored run's figure."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        raise SystemExit(
            __doc__ + "\nusage: python -m relulab.monitor.figure LAYERS_CSV PNG [METRIC]"
        )
    layers = pd.read_csv(args[0])
    print(run_figure(layers, args[1], *args[2:]))


if __name__ == "__main__":
    main()
