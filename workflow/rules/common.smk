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

from relulab.study import grid, paths, settings
from relulab.data import vision

# The validated config, typed once: the rules and scripts read STUDY, not config keys.
STUDY = settings.from_config(config)
POINTS = grid.by_id(STUDY)
# Training jobs: the grid's points dealt out by the config alone (so that a cluster node that
# reads this file again finds the same jobs), each job keeping only its points not yet finished
# with these settings. A finished point is no job's output and is never trained again, whatever
# is added to the grid or however points_per_job changes.
JOBS = grid.unfinished_jobs(STUDY)
TRACKING_URI = tracking_uri(STUDY.tracking.configured_uri)
EXPERIMENT_MARKER = str(paths.EXPERIMENT)
# A store made for this study and since lost, or a rebuild that was interrupted: the rule
# rebuild_store runs before any training job (each rebuild has its report; the number counts
# the earlier ones, so a store lost again is rebuilt again).
REBUILD_REPORT = (
    str(paths.rebuild_report(len(list(paths.REBUILDS.glob("*.json"))) + 1))
    if needs_rebuild(TRACKING_URI, EXPERIMENT_MARKER)
    else None
)


# Every results path comes from relulab.study.paths; these spell them as Snakemake's strings.
def table(name, ext="csv"):
    return str(paths.table(name, ext))


def figure(name, ext="png"):
    return str(paths.figure(name, ext))


def logfile(name):
    return str(paths.log(name))


def tracking_ready():
    """What a job that uses the store waits for: the experiment, and a rebuild if one is due."""
    return [EXPERIMENT_MARKER] + ([REBUILD_REPORT] if REBUILD_REPORT else [])


# Downloaded datasets: stop before any job when their files are missing (a dry run only
# warns, so the DAG of a study can be inspected before the data is fetched).
DATA_DIR = str(vision.resolve_data_dir(STUDY.data.folder, workflow.basedir))
DATA_FILE = str(paths.dataset(STUDY.data.name))
if STUDY.data.name in vision.DATASETS and not Path(DATA_FILE).exists():
    problem = vision.missing_message(STUDY.data.name, DATA_DIR)
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
    return expand(figure("{name}", "{ext}"), name=names, ext=["png", "svg"])


def control_points():
    """Q1's 1-ulp controls: the f'(0)=0 points of the controlled activations."""
    controlled = STUDY.experiments.control_activations
    return [
        point
        for point in POINTS.values()
        if point.zero_grad == 0.0 and point.activation in controlled
    ]


def control_manifest():
    return [str(paths.CONTROLS / "manifest.json")] if control_points() else []


def zero_grad_outputs():
    """Q1: the zero_grad twins table and, when enabled, the bifurcation study."""
    names = ["zero_grad_effect"]
    if STUDY.experiments.bifurcation["enabled"]:
        names.append("bifurcation")
    tables = names + (
        ["bifurcation_machine", "bifurcation_rates"]
        if STUDY.experiments.bifurcation["enabled"]
        else []
    )
    return [
        expand(table("{name}", "{ext}"), name=tables, ext=["csv", "md", "html"]),
        expand(figure("{name}", "{ext}"), name=names, ext=["png", "svg"]),
    ]


def born_dead_outputs():
    """Q2: born-dead fraction of untrained networks against depth and width, when enabled."""
    if not STUDY.experiments.born_dead["enabled"]:
        return []
    return expand(table("born_dead", "{ext}"), ext=["csv", "md", "html"])


def study_outputs():
    """What the study computes: every table, figure, the findings and the definitions page."""
    return [
        trained(),
        born_dead_outputs(),
        expand(table("summary", "{ext}"), ext=["csv", "md", "html"]),
        figures(),
        str(paths.FINDINGS),
        str(paths.DEFINITIONS),
        zero_grad_outputs(),
    ]


def all_outputs():
    # The study's results, and a run in MLflow holding findings, figures, tables and config.
    return [study_outputs(), str(paths.STUDY_RUN), tracking_ready()]
