import re
import sys
from pathlib import Path

from snakemake.utils import update_config

# Parsing reads the config and the finished points' files and nothing else: no torch, no
# MLflow, nothing written (the store is made, checked and rebuilt by the rules in data.smk).
from relulab.study import config as relulab_config
from relulab.study import snakemake_settings
from relulab.train.store import needs_rebuild
from relulab.train.tracking_study import tracking_uri

# Values given with --config arrive as untyped strings; restore their YAML types. Values
# from config files keep their own, so a quoted number there stays an error.
update_config(
    config,
    relulab_config.typed_overrides(snakemake_settings.command_line_config(workflow)),
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

from relulab.study import grid, paths
from relulab.data import vision

POINTS = grid.by_id(config)
# Training jobs: the grid's points dealt out by the config alone (so that a cluster node that
# reads this file again finds the same jobs), each job keeping only its points not yet finished
# with these settings. A finished point is no job's output and is never trained again, whatever
# is added to the grid or however points_per_job changes.
JOBS = grid.unfinished_jobs(config)
TRACKING_URI = tracking_uri(config["tracking_uri"])
EXPERIMENT_MARKER = "results/mlflow/experiment.json"
# A store made for this study and since lost, or a rebuild that was interrupted: the rule
# rebuild_store runs before any training job (each rebuild has its report; the number counts
# the earlier ones, so a store lost again is rebuilt again).
REBUILD_REPORT = (
    f"results/mlflow/rebuilds/{len(list(Path('results/mlflow/rebuilds').glob('*.json'))) + 1}.json"
    if needs_rebuild(TRACKING_URI, EXPERIMENT_MARKER)
    else None
)


def tracking_ready():
    """What a job that uses the store waits for: the experiment, and a rebuild if one is due."""
    return [EXPERIMENT_MARKER] + ([REBUILD_REPORT] if REBUILD_REPORT else [])


# Downloaded datasets: stop before any job when their files are missing (a dry run only
# warns, so the DAG of a study can be inspected before the data is fetched).
config["data_dir"] = str(vision.resolve_data_dir(config["data_dir"], workflow.basedir))
if (
    config["dataset"] in vision.DATASETS
    and not Path(f"results/data/{config['dataset']}.npz").exists()
):
    problem = vision.missing_message(config["dataset"], config["data_dir"])
    if problem and snakemake_settings.dry_run(workflow):
        print(f"relulab: warning (dry run): {problem}", file=sys.stderr)
    elif problem:
        sys.exit(f"relulab: {problem}")


wildcard_constraints:
    point=grid.POINT_PATTERN,
    dataset="|".join(
        relulab_config.load_schema(
            workflow.source_path("../schemas/config.schema.yaml")
        )["properties"]["dataset"]["enum"]
    ),


def train_resources():
    """Resources of every training job: `--set-resources train:KEY=VALUE` (or the profile's
    `set-resources: train:`) applies to all of them, although each job is its own rule.
    """
    return snakemake_settings.resource_overrides(workflow, "train")


def gpus(device):
    """GPUs a job on `device` (cpu, cuda or auto) asks a cluster for: --gpus on SLURM."""
    return 0 if device == "cpu" else 1


def trained():
    """Every grid point's outputs: all grid points are trained when these exist."""
    return [path for point in POINTS for path in paths.point_files(point)]


def run_dirs():
    return [str(paths.run_dir(point)) for point in POINTS]


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
        "cost_step",
    ]
    return expand("results/figures/{name}.{ext}", name=names, ext=["png", "svg"])


def control_points():
    """Q1's 1-ulp controls: the f'(0)=0 points of the controlled activations."""
    if not config["twins_control"]["enabled"]:
        return []
    return [
        point
        for point in POINTS.values()
        if point.zero_grad == 0.0
        and point.activation in config["twins_control"]["activations"]
    ]


def control_manifest():
    return ["results/controls/manifest.json"] if control_points() else []


def zero_grad_outputs():
    """Q1: the zero_grad twins table and, when enabled, the bifurcation study."""
    names = ["zero_grad_effect"]
    if config["bifurcation"]["enabled"]:
        names.append("bifurcation")
    tables = names + (
        ["bifurcation_machine", "bifurcation_rates"]
        if config["bifurcation"]["enabled"]
        else []
    )
    return [
        expand("results/tables/{name}.{ext}", name=tables, ext=["csv", "md", "html"]),
        expand("results/figures/{name}.{ext}", name=names, ext=["png", "svg"]),
    ]


def born_dead_outputs():
    """Q2: born-dead fraction of untrained networks against depth and width, when enabled."""
    if not config["born_dead"]["enabled"]:
        return []
    return expand("results/tables/born_dead.{ext}", ext=["csv", "md", "html"])


def study_outputs():
    """What the study computes: every table, figure, the findings and the definitions page."""
    return [
        trained(),
        born_dead_outputs(),
        expand("results/tables/summary.{ext}", ext=["csv", "md", "html"]),
        figures(),
        "results/findings.md",
        "results/definitions.html",
        zero_grad_outputs(),
    ]


def all_outputs():
    # The study's results, and a run in MLflow holding findings, figures, tables and config.
    return [study_outputs(), "results/mlflow/study.json", tracking_ready()]
