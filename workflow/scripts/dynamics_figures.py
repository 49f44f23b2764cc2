import pandas as pd

from relulab.figures import dynamics as dynamics_plots
from relulab.study import logs
from relulab.tables import summary as analysis

logs.to_file(snakemake.log[0])  # noqa: F821
out = snakemake.output  # noqa: F821
params = snakemake.params  # noqa: F821
layers = pd.read_csv(snakemake.input.layers)  # noqa: F821
# Axes that vary besides those a figure shows are written into each line's label.
main = analysis.label_settings(layers[layers["point"].isin(params.main_ids)])
deeper = analysis.label_settings(
    layers[layers["point"].isin(params.depth_ids)],
    shown=("activation", "zero_grad", "depth", "init"),  # init: the figure's rows
)
dynamics_plots.death_over_time(main, out.death_over_time)
dynamics_plots.death_by_layer(main, out.death_by_layer)
dynamics_plots.gradient_by_depth(deeper if len(deeper) else main, out.gradient_by_depth)
points = pd.read_csv(snakemake.input.convergence)  # noqa: F821
dynamics_plots.convergence(points, params.main_ids, params.depth_ids, out.convergence)
