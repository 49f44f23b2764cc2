from relulab.figures import twins as twins_figure
from relulab.study import logs
from relulab.tables import summary as analysis
from relulab.tables import twins

logs.to_file(snakemake.log[0])  # noqa: F821
out = snakemake.output  # noqa: F821
params = snakemake.params  # noqa: F821
controls = twins.load(params.control_dirs) if params.control_dirs else None
table = twins.effect_table(twins.load(params.run_dirs), controls=controls)
analysis.write_table(table, out.csv)
twins_figure.plot(table, out.figure)
