import os
import sys

# A GEMM code path chosen by the environment (MKL reads MKL_CBWR when it loads): set before
# torch is imported, in this job's own process.
if snakemake.params.env:  # noqa: F821
    if "torch" in sys.modules:
        raise RuntimeError("torch was loaded before the GEMM path's environment could be set")
    os.environ.update(snakemake.params.env)  # noqa: F821

import torch  # noqa: E402

from relulab.data import prepared as data  # noqa: E402
from relulab.experiments import bifurcation  # noqa: E402
from relulab.study import logs  # noqa: E402
from relulab.train.job import resolve_device  # noqa: E402

logs.to_file(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
settings = snakemake.params.settings  # noqa: F821
split = data.load(snakemake.input.data, inputs=settings["inputs"])  # noqa: F821
per_init = bifurcation.measure_architectures(
    split.x_train,
    split.y_train,
    snakemake.wildcards.precision,  # noqa: F821
    bifurcation.architectures(settings),
    settings["batch_size"],
    bifurcation.inits_of(settings, snakemake.wildcards.precision),  # noqa: F821
    activation=settings["activation"],
    zero_grad=settings["zero_grad"],
    init=settings["init"],
    device=resolve_device(settings["device"]),
    inits_at_once=settings["inits_at_once"],
    dataset=settings["dataset"],
    inputs=settings["inputs"],
    compare=settings["compare"],
    skip_batches_without_zeros=settings["skip_batches_without_zeros"],
)
per_init.to_csv(snakemake.output[0], index=False)  # noqa: F821
