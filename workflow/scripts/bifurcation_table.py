import pandas as pd

from relulab.experiments import bifurcation
from relulab.figures import bifurcation as figure
from relulab.study import logs
from relulab.tables import summary as analysis

logs.to_file(snakemake.log[0])  # noqa: F821
out = snakemake.output  # noqa: F821
per_init = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)  # noqa: F821
per_init.to_csv(out.inits, index=False)
summary = bifurcation.table(per_init)
analysis.write_table(summary, out.csv, digits=14)
figure.plot(summary, out.figure)
