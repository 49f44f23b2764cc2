"""Seaborn figures of a study, each saved as PNG and SVG.

Diverged seeds are left out of the curves (their metrics are not numbers); the tables count them.
Bands are 95 % intervals over seeds.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402

from relulab.tables.summary import mean_ci95  # noqa: E402


def t_interval(values) -> tuple[float, float]:
    """The band of a line: the Student-t 95 % interval over seeds, as in the tables (and quick:
    seaborn's default bootstrap resamples a thousand times per point and epoch)."""
    mean, half = mean_ci95(values)
    return mean - half, mean + half


BAND = t_interval
sns.set_theme(context="notebook", style="whitegrid")


def save(figure, path: str | Path) -> None:
    """Write ``path`` (PNG) and the same figure as SVG beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130, bbox_inches="tight")
    figure.savefig(path.with_suffix(".svg"), bbox_inches="tight")
    plt.close(figure)


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
    """Final dead fraction, activation (x zero_grad) by learning rate, one panel per precision."""
    precisions = sorted(summary["precision"].unique())
    depths = sorted(summary["depth"].unique())
    panels = [(p, d) for p in precisions for d in depths]
    rows = summary["variant"].nunique()
    figure, axes = plt.subplots(
        1,
        len(panels),
        figsize=(1.6 + 1.3 * summary["lr"].nunique() * len(panels), 0.45 * rows + 2),
        squeeze=False,
    )
    for ax, (precision, depth) in zip(axes[0], panels, strict=True):
        part = summary[(summary["precision"] == precision) & (summary["depth"] == depth)]
        grid = part.pivot_table(index="variant", columns="lr", values=value, aggfunc="mean")
        grid.columns = [f"{c:g}" for c in grid.columns]
        sns.heatmap(
            grid,
            ax=ax,
            annot=True,
            fmt=".2f",
            vmin=0,
            vmax=1,
            cmap="rocket_r",
            cbar_kws={"label": "dead fraction (final epoch, mean over seeds)"},
        )
        ax.set_xlabel("learning rate")
        ax.set_ylabel("activation")
        title = "Dead units after training"
        if len(panels) > 1:
            title += f"\n{precision}, depth {depth}"
        ax.set_title(title)
    save(figure, path)


def over_epochs(
    epochs: pd.DataFrame, metric: str, label: str, path: str | Path, log_y: bool = False
) -> None:
    """``metric`` against epoch, one line per activation variant, one panel per learning rate."""
    data = _finished(epochs).copy()
    if data.empty:
        no_finished_seeds(path, f"{label} against epoch")
        return
    data["panel"] = data["lr"].map(_lr_label)
    order = [_lr_label(v) for v in sorted(data["lr"].unique())]
    grid = sns.relplot(
        data=data,
        x="epoch",
        y=metric,
        hue="variant",
        col="panel",
        col_order=order,
        kind="line",
        errorbar=BAND,
        col_wrap=min(3, len(order)),
        height=3.4,
        aspect=1.2,
        facet_kws={"sharey": True},
    )
    grid.set_axis_labels("epoch (0 = initialisation)", label)
    grid.set_titles("{col_name}")
    for ax in grid.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if log_y:
        grid.set(yscale="log")
    grid.legend.set_title("activation")
    save(grid.figure, path)


def final_accuracy_vs_lr(summary_epochs: pd.DataFrame, path: str | Path) -> None:
    """Final validation accuracy against the learning rate (log axis), one line per variant."""
    data = _finished(summary_epochs)
    if data.empty:
        no_finished_seeds(path, "Final accuracy against learning rate")
        return
    figure, ax = plt.subplots(figsize=(7, 4.5))
    sns.lineplot(
        data=data,
        x="lr",
        y="val_accuracy",
        hue="variant",
        marker="o",
        errorbar=BAND,
        ax=ax,
    )
    ax.set_xscale("log")
    # One labelled tick per learning rate of the grid, written as in the config.
    rates = sorted(data["lr"].unique())
    ax.set_xticks(rates, [f"{rate:g}" for rate in rates])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("validation accuracy, final epoch")
    ax.set_title("Final accuracy against learning rate (95 % interval over seeds)")
    ax.legend(title="activation", bbox_to_anchor=(1.02, 1), loc="upper left")
    save(figure, path)
