import torch

from relulab.study import logs, paths
from relulab.train import job

logs.to_file(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
for point in snakemake.params.points:  # noqa: F821
    job.run_point(
        point,
        snakemake.config,  # noqa: F821
        snakemake.input.data,  # noqa: F821
        paths.run_dir(point.id),
        snakemake.params.uri,  # noqa: F821
    )
