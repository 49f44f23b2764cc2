import torch

from relulab.data import prepared as data
from relulab.experiments import cost_step
from relulab.figures import cost_step as figure
from relulab.study import logs
from relulab.tables import summary as analysis

logs.to_file(snakemake.log[0])  # noqa: F821
# One thread: a cost per core, as in the per-element benchmark (the rule still holds both
# cores of the default machine, so that no training job runs beside the timing).
torch.set_num_threads(1)
params = snakemake.params  # noqa: F821
split = data.load(snakemake.input.data)  # noqa: F821
size = cost_step.StepSize(
    batch_size=params.batch_size,
    width=params.width,
    depth=params.depth,
    in_features=split.in_features,
    classes=split.classes,
)
table = cost_step.benchmark(
    split.x_train,
    split.y_train,
    size,
    cost_step.step_variants(params.activations, params.zero_grads),
    optimizers=params.optimizers,
    repeats=params.settings["step_repeats"],
    steps=params.settings["steps_per_timing"],
    precision=params.settings["precision"],
)
analysis.write_table(table, snakemake.output.csv, digits=6)  # noqa: F821
figure.plot(table, snakemake.output.figure)  # noqa: F821
