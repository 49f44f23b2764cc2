from snakemake.utils import min_version

from relulab.study.snakemake_settings import configfiles_given, main_process
from relulab.study import paths

min_version("9.0")


# A study given with --configfile replaces the default study instead of extending it.
if not configfiles_given(workflow):

    configfile: "config/config.yaml"


# Each study works in its own folder, studies/<study>/ (see relulab.study.paths), so that one
# study never rewrites another's files; `--directory DIR` chooses another folder instead. The
# jobs Snakemake spawns (a cluster's too) start in that folder already and stay there.
if main_process(workflow):

    workdir: paths.study_dir(config, workflow.basedir)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/bifurcation.smk"
include: "workflow/rules/born_dead.smk"
include: "workflow/rules/twins.smk"
include: "workflow/rules/cost.smk"
include: "workflow/rules/findings.smk"
include: "workflow/rules/docs.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
