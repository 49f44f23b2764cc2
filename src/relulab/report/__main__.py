"""Rebuild a finished study's findings from its tables: ``python -m relulab.report RESULTS
CONFIG [OUT]`` writes OUT/findings.md and OUT/findings.html (OUT defaults to RESULTS)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from relulab.report import findings
from relulab.report.inputs import from_results
from relulab.study import config as study_config
from relulab.study import settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m relulab.report", description=__doc__)
    parser.add_argument("results", type=Path, help="the study's results/ folder")
    parser.add_argument("config", type=Path, help="the config file the study ran with")
    parser.add_argument("out", type=Path, nargs="?", help="where to write (default: results)")
    args = parser.parse_args(argv)
    study = settings.from_config(study_config.validate(yaml.safe_load(args.config.read_text())))
    out = args.out or args.results
    findings.write(from_results(args.results, study), out / "findings.md", out / "findings.html")
    print(f"wrote {out / 'findings.md'} and {out / 'findings.html'}")


if __name__ == "__main__":
    main()
