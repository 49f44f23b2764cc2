from relulab.data import prepared as data
from relulab.study import logs

logs.to_file(snakemake.log[0])  # noqa: F821
data.prepare(
    snakemake.wildcards.dataset,  # noqa: F821
    snakemake.output[0],  # noqa: F821
    seed=snakemake.params.seed,  # noqa: F821
    data_dir=snakemake.params.data_dir,  # noqa: F821
    accept_unverified=snakemake.params.accept_unverified,  # noqa: F821
)
