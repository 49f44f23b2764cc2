import json
from pathlib import Path

import torch

from relulab.study import logs, settings
from relulab.train import job

logs.to_file(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
study, points = settings.from_config(snakemake.config), snakemake.params.points  # noqa: F821
trained = {}
# The controls of points that train as one model train as one model too.
for group in job.training_groups(points, study):
    out_dirs = [Path("results/controls") / point.id for point in group]
    job.run_group(group, study, snakemake.input.data, out_dirs, None, perturbed=True)  # noqa: F821
    trained.update({p.id: str(d / "point.json") for p, d in zip(group, out_dirs, strict=True)})
Path(snakemake.output[0]).write_text(json.dumps({"points": trained}, indent=2) + "\n")  # noqa: F821
