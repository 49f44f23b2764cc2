import sys

from snakemake.utils import update_config

from relulab import config as relulab_config
from relulab import grid
from relulab.tracking import tracking_uri

# Values given with --config arrive as untyped strings; restore their YAML types.
update_config(
    config, relulab_config.typed_overrides(workflow.config_settings.overwrite_config)
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

POINTS = grid.by_id(config)
TRACKING_URI = tracking_uri(config["tracking_uri"])


wildcard_constraints:
    point=grid.POINT_PATTERN,
    dataset="|".join(
        relulab_config.load_schema(
            workflow.source_path("../schemas/config.schema.yaml")
        )["properties"]["dataset"]["enum"]
    ),


def point_of(wildcards):
    return POINTS[wildcards.point]


def run_files(name):
    return expand("results/runs/{point}/{name}", point=POINTS, name=name)


def figures():
    names = [
        "dead_heatmap",
        "dead_over_epochs",
        "accuracy_over_epochs",
        "accuracy_vs_lr",
    ]
    return expand("results/figures/{name}.{ext}", name=names, ext=["png", "svg"])


def all_outputs():
    return [
        run_files("point.json"),
        expand("results/tables/summary.{ext}", ext=["csv", "md", "html"]),
        figures(),
    ]
