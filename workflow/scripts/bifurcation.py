import torch

from relulab.data import prepared as data
from relulab.experiments import bifurcation
from relulab.study import logs
from relulab.train.job import resolve_device

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
