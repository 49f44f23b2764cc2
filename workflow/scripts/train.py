import json
import logging
import sys
from pathlib import Path

import torch

from relulab.data.prepared import PreparedDataError
from relulab.study import logs
from relulab.train import job, store

logs.to_file(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
trained = {}
try:
    for point in snakemake.params.points:  # noqa: F821
        out_dir = Path("results/runs") / point.id
        job.run_point(point, snakemake.config, snakemake.input.data, out_dir, snakemake.params.uri)  # noqa: F821
        trained[point.id] = str(out_dir / "point.json")
except (
    store.TrackingUnavailableError,
    store.StoreLostError,
    PreparedDataError,
    job.NonFiniteStartError,
) as error:
    # A fault with a known remedy: one line that says it, in the log and on the terminal.
    logging.getLogger("relulab").error("%s", error)
    print(f"relulab: {error}", file=sys.__stderr__)
    sys.exit(1)
manifest = {"batch": snakemake.wildcards.batch, "points": trained}  # noqa: F821
Path(snakemake.output[0]).write_text(json.dumps(manifest, indent=2) + "\n")  # noqa: F821
