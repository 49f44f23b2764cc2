import json
from pathlib import Path

import torch

from relulab.study import logs
from relulab.train import job

logs.to_file(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
trained = {}
for point in snakemake.params.points:  # noqa: F821
    out_dir = Path("results/controls") / point.id
    job.run_point(point, snakemake.config, snakemake.input.data, out_dir, None, perturbed=True)  # noqa: F821
    trained[point.id] = str(out_dir / "point.json")
Path(snakemake.output[0]).write_text(json.dumps({"points": trained}, indent=2) + "\n")  # noqa: F821
