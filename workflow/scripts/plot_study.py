import pandas as pd

from relulab.figures import study as plots
from relulab.study import grid, logs, settings
from relulab.tables import summary as analysis

logs.to_file(snakemake.log[0])  # noqa: F821
out = snakemake.output  # noqa: F821
summary = pd.read_csv(snakemake.input.summary)  # noqa: F821
epochs = pd.read_csv(snakemake.input.epochs)  # noqa: F821
# The main grid only: the depth study's extra points have figures of their own.
main = {point.id for point in grid.main_grid(settings.from_config(snakemake.config))}  # noqa: F821
# Axes that vary besides activation, f'(0) and lr are written into each line's label.
summary = analysis.label_settings(summary[summary["point"].isin(main)])
epochs = analysis.label_settings(epochs[epochs["point"].isin(main)])
plots.dead_heatmap(summary, out.dead_heatmap)
plots.over_epochs(
    epochs, "dead_fraction", "dead fraction (all hidden units)", out.dead_over_epochs, deaths=True
)
plots.over_epochs(epochs, "val_accuracy", "validation accuracy", out.accuracy_over_epochs)
plots.final_accuracy_vs_lr(analysis.final_rows(epochs), out.accuracy_vs_lr)
