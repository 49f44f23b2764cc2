import json
from pathlib import Path

import yaml

from relulab.study import logs
from relulab.train import store, tracking_study
from relulab.train.provenance import git_commit

logs.to_file(snakemake.log[0])  # noqa: F821
params = snakemake.params  # noqa: F821
given = [Path(path) for path in snakemake.input]  # noqa: F821
# Per-epoch and per-layer rows are in the grid points' runs already; the rest is the summary.
ROW_TABLES = {"epochs.csv", "layers.csv", "bifurcation_inits.csv", "convergence_runs.csv"}
artifacts = {
    "": [path for path in given if path.name.startswith("findings.")],
    "figures": [path for path in given if path.suffix == ".png"],
    "tables": [
        path
        for path in given
        if path.parent.name == "tables"
        and path.suffix in (".csv", ".md", ".html")
        and path.name not in ROW_TABLES
    ],
}
config = yaml.safe_dump(dict(snakemake.config), sort_keys=False)  # noqa: F821
provenance = {"git_commit": git_commit()}
# Under the store's lock: never while a rebuild of the store is under way.
with store.faults_in_one_line(params.uri), store.store_lock(params.uri):
    run_id = tracking_study.log_study(params.uri, params.experiment, artifacts, config, provenance)
summary = {
    "tracking_uri": params.uri,
    "experiment": params.experiment,
    "study_run_id": run_id,
    # What the run holds, so that a rebuilt store gets it again (relulab.train.recover).
    "artifacts": {folder: [str(path) for path in paths] for folder, paths in artifacts.items()},
    "config": config,
    "provenance": provenance,
}
Path(snakemake.output[0]).write_text(json.dumps(summary, indent=2) + "\n")  # noqa: F821
