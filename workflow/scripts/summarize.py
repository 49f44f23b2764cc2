import json

from relulab.study import logs
from relulab.tables import summary as analysis
from relulab.train.provenance import tables_provenance

logs.to_file(snakemake.log[0])  # noqa: F821
epochs, layers = analysis.collect(snakemake.params.run_dirs)  # noqa: F821
analysis.write_table(analysis.summary(epochs, layers), snakemake.output.csv)  # noqa: F821
epochs.to_csv(snakemake.output.epochs, index=False)  # noqa: F821
layers.to_csv(snakemake.output.layers, index=False)  # noqa: F821
# Beside the tables: the code and configuration they were made with.
with open(snakemake.output.provenance, "w") as sidecar:  # noqa: F821
    json.dump(tables_provenance(snakemake.config), sidecar, indent=2)  # noqa: F821
    sidecar.write("\n")
