import signal
import sys

# Ctrl-C: stop at once and quietly (exit status 130), not with a traceback on the console from
# wherever the job was (imports, MLflow, training); the checkpoint of the last epoch resumes it.
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))

import json  # noqa: E402 - after the Ctrl-C handler
from pathlib import Path  # noqa: E402 - after the Ctrl-C handler

import torch  # noqa: E402 - after the Ctrl-C handler

from relulab.study import logs  # noqa: E402 - after the Ctrl-C handler
from relulab.train import job  # noqa: E402 - after the Ctrl-C handler

logs.to_file(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
trained = {}
for point in snakemake.params.points:  # noqa: F821
    out_dir = Path("results/runs") / point.id
    job.run_point(point, snakemake.config, snakemake.input.data, out_dir, snakemake.params.uri)  # noqa: F821
    trained[point.id] = str(out_dir / "point.json")
manifest = {"batch": snakemake.wildcards.batch, "points": trained}  # noqa: F821
Path(snakemake.output[0]).write_text(json.dumps(manifest, indent=2) + "\n")  # noqa: F821
