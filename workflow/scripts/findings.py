from relulab.report import findings
from relulab.study import logs, settings

logs.to_file(snakemake.log[0])  # noqa: F821
given = snakemake.input  # noqa: F821
params = snakemake.params  # noqa: F821
inputs = findings.Inputs(
    summary=findings.read_table(given.summary),
    death=findings.read_table(given.death),
    revival=findings.read_table(given.revival),
    gradient=findings.read_table(given.gradient),
    convergence=findings.read_table(given.convergence),
    epochs=findings.read_table(given.epochs),
    layers=findings.read_table(given.layers),
    main_ids=set(params.main_ids),
    depth_ids=set(params.depth_ids),
    study=settings.from_config(snakemake.config),  # noqa: F821
    cost=findings.read_optional(given.cost),
    best_lr=findings.read_table(given.best_lr),
    revival_pooled=findings.read_table(given.revival_pooled),
    **{name: findings.read_optional(path) for name, path in params.q1_tables.items()},
    **{name: findings.read_optional(path) for name, path in params.q2_tables.items()},
    **{name: findings.read_optional(path) for name, path in params.optional_tables.items()},
)
findings.write(inputs, snakemake.output.markdown, snakemake.output.html)  # noqa: F821
