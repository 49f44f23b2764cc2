import pandas as pd

from relulab.report import findings
from relulab.study import logs

logs.to_file(snakemake.log[0])  # noqa: F821
given = snakemake.input  # noqa: F821
params = snakemake.params  # noqa: F821
inputs = findings.Inputs(
    summary=pd.read_csv(given.summary),
    death=pd.read_csv(given.death),
    revival=pd.read_csv(given.revival),
    gradient=pd.read_csv(given.gradient),
    convergence=pd.read_csv(given.convergence),
    epochs=pd.read_csv(given.epochs),
    main_ids=set(params.main_ids),
    depth_ids=set(params.depth_ids),
    config=snakemake.config,  # noqa: F821
    cost=findings.read_optional(given.cost),
    best_lr=pd.read_csv(given.best_lr),
    revival_pooled=pd.read_csv(given.revival_pooled),
    **{name: findings.read_optional(path) for name, path in params.q1_tables.items()},
    **{name: findings.read_optional(path) for name, path in params.q2_tables.items()},
)
findings.write(inputs, snakemake.output.markdown, snakemake.output.html)  # noqa: F821
