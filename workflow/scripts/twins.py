from relulab.study import logs
from relulab.tables import summary as analysis
from relulab.tables import twins

logs.to_file(snakemake.log[0])  # noqa: F821
out = snakemake.output  # noqa: F821
table = twins.effect_table(twins.load(snakemake.params.run_dirs))  # noqa: F821
analysis.write_table(table, out.csv)
twins.plot(table, out.figure)
