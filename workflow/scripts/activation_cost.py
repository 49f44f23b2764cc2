import torch

from relulab import analysis, cost, dynamics_plots, logs

logs.to_file(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
settings = snakemake.params.settings  # noqa: F821
table = cost.benchmark(
    sizes=settings["sizes"], repeats=settings["repeats"], precision=settings["precision"]
)
analysis.write_table(table, snakemake.output.csv)  # noqa: F821
dynamics_plots.cost(table, snakemake.output.figure)  # noqa: F821
