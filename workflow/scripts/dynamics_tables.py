import pandas as pd

from relulab.study import logs
from relulab.tables import convergence, dynamics
from relulab.tables import summary as analysis

logs.to_file(snakemake.log[0])  # noqa: F821
out = snakemake.output  # noqa: F821
layers = pd.read_csv(snakemake.input.layers)  # noqa: F821
epochs = pd.read_csv(snakemake.input.epochs)  # noqa: F821
analysis.write_table(dynamics.death_table(layers), out.death)
analysis.write_table(dynamics.revival_table(layers), out.revival)
counted = dynamics.distinct_runs(epochs)
pooled = dynamics.revival_by_cause(layers, counted, by=dynamics.SETTING_COLUMNS)
analysis.write_table(pooled, out.revival_pooled)
analysis.write_table(dynamics.gradient_table(layers), out.gradient)
runs = convergence.run_table(epochs, snakemake.params.target)  # noqa: F821
runs.to_csv(out.convergence_runs, index=False)
analysis.write_table(convergence.point_table(runs), out.convergence)
analysis.write_table(convergence.best_lr_table(runs), out.best_lr)
