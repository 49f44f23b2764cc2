import torch

from relulab.data import prepared
from relulab.experiments import born_dead
from relulab.figures import dynamics as dynamics_plots
from relulab.study import logs
from relulab.tables import summary as analysis

logs.to_file(snakemake.log[0])  # noqa: F821
torch.set_num_threads(1)
out = snakemake.output  # noqa: F821
settings = snakemake.params.settings  # noqa: F821
data = prepared.load(snakemake.input.data)  # noqa: F821
networks = born_dead.network_rows(
    data.x_train,
    data.classes,
    settings["init"],
    settings["widths"],
    settings["depths"],
    settings["networks"],
)
networks.to_csv(out.networks, index=False)
table = born_dead.table(networks)
analysis.write_table(table, out.csv)
dynamics_plots.born_dead(table, out.figure)
