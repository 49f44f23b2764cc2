import re
import sys
from pathlib import Path

from snakemake.utils import update_config

from relulab.study import config as relulab_config
from relulab.train.tracking import tracking_uri

# Values given with --config arrive as untyped strings; restore their YAML types. Values
# from config files keep their own, so a quoted number there stays an error.
update_config(
    config, relulab_config.typed_overrides(dict(workflow.config_settings.config))
)
try:
    config.update(
        relulab_config.validate(
            config,
            relulab_config.load_schema(
                workflow.source_path("../schemas/config.schema.yaml")
            ),
        )
    )
except relulab_config.ConfigError as error:
    sys.exit(f"relulab: invalid configuration: {error}")

# These load torch (seconds); a bad config has been reported by now.
from relulab.study import grid
from relulab.data import vision

POINTS = grid.by_id(config)
BATCHES = grid.batches(config)
TRACKING_URI = tracking_uri(config["tracking_uri"])

# The MLflow store, before any job: a corrupt one stops the workflow with what to do; a lost
# one is made again and the finished points' runs are re-sent from results/runs/.
from relulab.train import recover, store

try:
    store.check_sqlite(TRACKING_URI)
except store.StoreCorruptError as error:
    sys.exit(f"relulab: {error}")
if not getattr(workflow.output_settings, "dryrun", False):
    recover.resend_lost_runs(TRACKING_URI, config, list(POINTS.values()))

# Downloaded datasets: stop before any job when their files are missing (a dry run only
# warns, so the DAG of a study can be inspected before the data is fetched).
config["data_dir"] = str(vision.resolve_data_dir(config["data_dir"], workflow.basedir))
if (
    config["dataset"] in vision.DATASETS
    and not Path(f"results/data/{config['dataset']}.npz").exists()
):
    problem = vision.missing_message(config["dataset"], config["data_dir"])
    if problem and getattr(workflow.output_settings, "dryrun", False):
        print(f"relulab: warning (dry run): {problem}", file=sys.stderr)
    elif problem:
        sys.exit(f"relulab: {problem}")


wildcard_constraints:
    point=grid.POINT_PATTERN,
    batch="|".join(re.escape(name) for name in BATCHES),
    dataset="|".join(
        relulab_config.load_schema(
            workflow.source_path("../schemas/config.schema.yaml")
        )["properties"]["dataset"]["enum"]
    ),


def points_of(wildcards):
    if wildcards.batch not in BATCHES:
        raise ValueError(f"{wildcards.batch!r} is not a training job of this study")
    return BATCHES[wildcards.batch]


def gpus(device):
    """GPUs a job on `device` (cpu, cuda or auto) asks a cluster for: --gpus on SLURM."""
    return 0 if device == "cpu" else 1


def trained():
    """Every training job's list of points: all grid points are trained when these exist."""
    return expand("results/batches/{batch}.json", batch=BATCHES)


def run_dirs():
    return expand("results/runs/{point}", point=POINTS)


def figures():
    names = [
        "dead_heatmap",
        "dead_over_epochs",
        "accuracy_over_epochs",
        "accuracy_vs_lr",
        "death_over_time",
        "death_by_layer",
        "gradient_by_depth",
        "convergence",
        "cost",
    ]
    return expand("results/figures/{name}.{ext}", name=names, ext=["png", "svg"])


def zero_grad_outputs():
    """Q1: the zero_grad twins table and, when enabled, the bifurcation study."""
    names = ["zero_grad_effect"]
    if config["bifurcation"]["enabled"]:
        names.append("bifurcation")
    return [
        expand("results/tables/{name}.{ext}", name=names, ext=["csv", "md", "html"]),
        expand("results/figures/{name}.{ext}", name=names, ext=["png", "svg"]),
    ]


def all_outputs():
    return [
        trained(),
        expand("results/tables/summary.{ext}", ext=["csv", "md", "html"]),
        figures(),
        "results/findings.md",
        zero_grad_outputs(),
    ]
