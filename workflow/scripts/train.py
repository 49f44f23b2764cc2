from pathlib import Path

import torch

from relulab import job, logs

logs.to_file(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
job.run_point(
    snakemake.params.point,  # noqa: F821
    snakemake.config,  # noqa: F821
    snakemake.input.data,  # noqa: F821
    Path(snakemake.output.summary).parent,  # noqa: F821
    snakemake.params.uri,  # noqa: F821
)
