import torch

from relulab.experiments import cost
from relulab.figures import dynamics as dynamics_plots
from relulab.study import logs
from relulab.tables import summary as analysis

logs.to_file(snakemake.log[0])  # noqa: F821
# One thread: a cost per core, free of thread scheduling (the rule still holds both cores of
# the default machine, so that no training job runs beside the timing).
torch.set_num_threads(1)
settings = snakemake.params.settings  # noqa: F821
table = cost.benchmark(
    sizes=settings["sizes"], repeats=settings["repeats"], precision=settings["precision"]
)
analysis.write_table(table, snakemake.output.csv)  # noqa: F821
dynamics_plots.cost(table, snakemake.output.figure)  # noqa: F821
