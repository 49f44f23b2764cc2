"""``bin/study -n``'s last words: which study the plan is for, where it lives, what it trains.

Run as ``python -m relulab.study.plan [snakemake arguments]`` after Snakemake's dry run (whose
table of jobs per rule ``relulab.study.console --plan`` has shown): it reads the config the
arguments name (``--configfile``, ``--config``, ``--directory``) and counts the grid points
done and left in the study's folder.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from relulab.study import paths, where


def arguments(argv: list[str]) -> argparse.Namespace:
    """The options of Snakemake's command line that choose a study; the rest is ignored."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--configfile", "--configfiles", nargs="+", default=[])
    options.add_argument("--config", "-C", nargs="+", default=[])
    options.add_argument("--directory", "-d")
    known, _ = options.parse_known_args(argv)
    return known


def overrides(pairs: list[str]) -> dict:
    """``--config KEY=VALUE`` as Snakemake reads it: each value in YAML."""
    import yaml

    given = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        given[key] = yaml.safe_load(value) if value else value
    return given


def summary(study: where.Study) -> str:
    """One paragraph: the study, its folder, its grid points done and to train."""
    from relulab.study import grid

    points = grid.expand(study.settings)
    done = sum((study.folder / paths.point_summary(point.id)).exists() for point in points)
    return textwrap.fill(
        f"Plan of study {study.name}, in {where.shown(study.folder)}/: {len(points)} grid "
        f"points, {done} done, {len(points) - done} to train (the train_* jobs above); results "
        f"under {where.shown(study.results)}/. `relulab status --study {study.name}` follows "
        "it once it runs.",
        width=100,
    )


def main(argv: list[str] | None = None) -> int:
    given = arguments(sys.argv[1:] if argv is None else argv)
    try:
        study = where.locate(
            given.configfile, directory=given.directory, overrides=overrides(given.config)
        )
    except (where.StudyNotFoundError, ValueError, OSError) as error:
        print(f"relulab: {error}", file=sys.stderr)
        return 1
    print(summary(study))
    return 0


if __name__ == "__main__":
    sys.exit(main())
