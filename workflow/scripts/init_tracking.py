import json

from relulab.study import grid, logs, settings
from relulab.train import recover, store, tracking_study

logs.to_file(snakemake.log[0])  # noqa: F821
params = snakemake.params  # noqa: F821
study = settings.from_config(snakemake.config)  # noqa: F821
with store.faults_in_one_line(params.uri):
    store.check_sqlite(params.uri)
    # The experiment, then every finished point verified against its files and re-sent where
    # its runs are missing or incomplete (a new, lost or half-rebuilt store).
    rebuilt = recover.rebuild(
        params.uri, study, grid.expand(study), artifact_root=params.artifact_root
    )
    experiment_id = tracking_study.experiment_id(params.uri, params.experiment)
summary = {
    "tracking_uri": params.uri,
    "experiment": params.experiment,
    "experiment_id": experiment_id,
}
if params.report:
    summary["rebuild"] = rebuilt.as_dict()
with open(snakemake.output[0], "w") as handle:  # noqa: F821
    json.dump(summary, handle, indent=2)
