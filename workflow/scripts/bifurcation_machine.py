import pandas as pd

from relulab.experiments import bifurcation, machine_dependence
from relulab.study import logs
from relulab.tables import summary as analysis

logs.to_file(snakemake.log[0])  # noqa: F821
out = snakemake.output  # noqa: F821
inputs = snakemake.input  # noqa: F821
default = pd.concat([pd.read_csv(path) for path in inputs.default], ignore_index=True)
other = (
    pd.concat([pd.read_csv(path) for path in inputs.other], ignore_index=True)
    if inputs.other
    else pd.DataFrame()
)
name = snakemake.params.name  # noqa: F821
side_by_side = machine_dependence.side_by_side(default, other, name)
analysis.write_table(side_by_side, out.machine, digits=14)
cells = pd.concat(
    [
        bifurcation.table(default).assign(gemm_path="default"),
        *([bifurcation.table(other).assign(gemm_path=name)] if len(other) else []),
    ],
    ignore_index=True,
)
analysis.write_table(machine_dependence.rates(cells), out.rates, digits=14)
