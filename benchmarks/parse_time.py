"""How long a finished study takes to plan: ``snakemake -n`` and ``relulab status``.

A finished default study is made without training it: every grid point's files are written
with the fingerprint and seeds the study expects (``point.json`` as a finished job leaves it,
empty CSVs, an MLflow store file), then every other output of the workflow is made as an
empty file and marked made (``snakemake --touch``). On
that folder each command runs ``--repeats`` times; medians are printed beside the floor any
such command pays here: starting Python and importing Snakemake (``snakemake --version``) and
starting Python and importing relulab's command-line module (``relulab --help``).

    python benchmarks/parse_time.py                    # the default study (config/config.yaml)
    python benchmarks/parse_time.py --configfile config/smoke.yaml --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from relulab.study import config as cfg
from relulab.study import grid, paths, settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def finished_study(folder: Path, configfile: Path) -> int:
    """Write every grid point of the study as finished under ``folder``; the point count."""
    merged = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    merged.update(yaml.safe_load(configfile.read_text()) or {})
    study = settings.from_config(cfg.validate(merged))
    points = grid.expand(study)
    seeds = {str(seed): {"status": "finished"} for seed in study.training.seeds}
    for point in points:
        run_dir = folder / paths.run_dir(point.id)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "epochs.csv").write_text("")
        (run_dir / "layers.csv").write_text("")
        summary = {"point": point.id, "fingerprint": grid.fingerprint(point, study), "seeds": seeds}
        (run_dir / "point.json").write_text(json.dumps(summary))
    (folder / paths.MLFLOW_DB).touch()  # the store is there: no rebuild is due
    return len(points)


def mark_every_output_made(snakemake: list[str], folder: Path) -> None:
    """Create every output the dry run plans (empty files), then ``--touch`` them in the DAG's
    order, so that Snakemake finds the study complete."""
    for _ in range(3):
        dry = subprocess.run([*snakemake, "-n"], check=True, capture_output=True, text=True)
        if "Nothing to be done" in dry.stdout + dry.stderr:
            return
        for line in dry.stdout.splitlines():
            if line.strip().startswith("output:"):
                for name in line.split(":", 1)[1].split(","):
                    path = folder / name.strip()
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
        subprocess.run([*snakemake, "--touch"], check=True, capture_output=True)
    raise AssertionError(f"the study is still not complete:\n{dry.stdout[-3000:]}")


def timed(command: list[str], cwd: Path, repeats: int) -> float:
    """The median wall time of ``command`` over ``repeats`` runs; it must succeed."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    configfile = args.configfile.resolve()
    with tempfile.TemporaryDirectory(prefix="relulab-parse-") as tmp:
        folder = Path(tmp)
        count = finished_study(folder, configfile)
        snakemake = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile")]
        snakemake += ["--configfile", str(configfile), "--directory", str(folder), "--cores", "2"]
        mark_every_output_made(snakemake, folder)
        status = [str(BIN / "relulab"), "status", "--configfile", str(configfile)]
        status += ["--directory", str(folder)]
        rows = [
            ("snakemake -n (finished study)", timed([*snakemake, "-n"], ROOT, args.repeats)),
            ("  floor: snakemake --version", timed([*snakemake[:1], "--version"], ROOT, 3)),
            ("relulab status (finished study)", timed(status, ROOT, args.repeats)),
            ("  floor: relulab --help", timed([str(BIN / "relulab"), "--help"], ROOT, 3)),
        ]
    print(f"{configfile.name}: {count} grid points, finished; {os.cpu_count()} CPUs")
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"median of {args.repeats} runs (floors: of 3), load {os.getloadavg()[0]:.1f}")
    for name, seconds in rows:
        print(f"  {name:34s} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
