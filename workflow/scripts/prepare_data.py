from relulab import data, logs

logs.to_file(snakemake.log[0])  # noqa: F821
data.prepare(snakemake.wildcards.dataset, snakemake.output[0], seed=snakemake.params.seed)  # noqa: F821
