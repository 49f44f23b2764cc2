import json

from relulab.study import logs
from relulab.train import tracking

logs.to_file(snakemake.log[0])  # noqa: F821
params = snakemake.params  # noqa: F821
experiment_id = tracking.ensure_experiment(params.uri, params.experiment, params.artifact_root)
with open(snakemake.output[0], "w") as handle:  # noqa: F821
    json.dump(
        {
            "tracking_uri": params.uri,
            "experiment": params.experiment,
            "experiment_id": experiment_id,
        },
        handle,
        indent=2,
    )
