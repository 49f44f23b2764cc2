"""The settings of a Snakemake run that the workflow reads and Snakemake offers no public API for.

Snakemake 9 keeps them on the ``workflow`` object a Snakefile sees, as attributes that are not
documented: whether ``--configfile`` was given, whether this is the main run or a job, the
``--config`` values as typed on the command line, whether this is a dry run, and the
``--set-resources`` values. They are read here and
nowhere else, so that a Snakemake release that moves them breaks one module, which
``tests/test_workflow_settings.py`` checks against the pinned Snakemake.
"""

from __future__ import annotations

from typing import Any


def configfiles_given(workflow: Any) -> bool:
    """Whether ``--configfile`` was given (it then replaces the default config file)."""
    return bool(workflow.overwrite_configfiles)


def main_process(workflow: Any) -> bool:
    """Whether this is the Snakemake run a user started, not a job it spawned (locally or on a
    cluster), which parses the Snakefile again in the folder the main run works in."""
    return bool(workflow.is_main_process)


def command_line_config(workflow: Any) -> dict:
    """The values given with ``--config``, before Snakemake merged them into ``config``."""
    return dict(workflow.config_settings.config)


def dry_run(workflow: Any) -> bool:
    """Whether Snakemake only plans (``-n``) and runs no job."""
    return bool(getattr(workflow.output_settings, "dryrun", False))


def resource_overrides(workflow: Any, rule: str) -> dict:
    """``--set-resources RULE:KEY=VALUE`` (or a profile's ``set-resources``) for ``rule``."""
    given = workflow.resource_settings.overwrite_resources.get(rule, {})
    return {key: getattr(value, "value", value) for key, value in dict(given).items()}
