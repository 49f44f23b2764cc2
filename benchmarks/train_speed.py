"""Training speed: relulab's training job against the strongest references, in one run.

Prints, in one run on one machine:

1. per-seed training time of one grid point (default: ReLU, f'(0) = 0, the middle learning rate)
   for relulab's training job (``job.run_point``: S seeds as one batched model, measurement,
   checkpoints, CSV outputs; MLflow off and on) against, each in its own process that imports
   neither Lightning nor relulab (``benchmarks/peers.py``): (a) the tight hand-written loop (data
   in memory, ``randperm`` indexing, ``torch.optim``), one seed after another; (b) PyTorch's
   model-ensembling recipe (``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``)
   with S seeds; (c) the FLOP floor: the model's arithmetic (training and the per-epoch probe)
   at the matrix-product rate measured on this machine in the same run. Every peer runs the
   same per-epoch dead-unit probe on the whole training set;
2. MLflow tracking overhead (tracking on against off, and the time inside tracking calls);
3. the study's end-to-end ``snakemake --cores N`` wall time.

Runs are interleaved (every variant in every repeat) and reported as medians over repeats, so
slow drifts of a shared machine touch every variant alike.

    python benchmarks/train_speed.py                       # the tables of benchmarks/README.md
    python benchmarks/train_speed.py --skip-end-to-end     # per-seed table and tracking only
    python benchmarks/train_speed.py --device cuda --seeds 1 8 64 256 --skip-end-to-end
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
import yaml

from relulab.data import prepared as data
from relulab.study import config as cfg
from relulab.study import grid
from relulab.train import job, tracking, tracking_study

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(__file__).resolve().parent / "peers.py"


def quiet() -> None:
    """Keep Lightning's and MLflow's notices and known warnings out of the printed tables."""
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def find_point(config: dict, point_id: str | None) -> grid.Point:
    """The grid point ``point_id``; by default relu with f'(0) = 0 at the middle learning rate."""
    points = grid.by_id(config)
    if point_id is None:
        relu = [p for p in points.values() if p.activation == "relu" and p.zero_grad == 0.0]
        if not relu:
            raise SystemExit("the config has no relu point with zero_grad 0; give --point")
        lrs = sorted({p.lr for p in relu})
        return next(p for p in relu if p.lr == lrs[len(lrs) // 2])
    if point_id not in points:
        raise SystemExit(f"no grid point {point_id!r}; the config has: {', '.join(points)}")
    return points[point_id]


class Timer:
    """Wall-clock and CPU seconds (this process, all threads) of the block inside."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self) -> Timer:
        sync(self.device)
        self.wall, self.cpu = -time.perf_counter(), -time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        sync(self.device)
        self.wall += time.perf_counter()
        self.cpu += time.process_time()


def peer(name: str, data_path: Path, point: grid.Point, config: dict, seeds: int, args) -> dict:
    """Run one reference of ``benchmarks/peers.py`` in a fresh process; its JSON result.

    The process imports neither Lightning nor relulab; its time excludes start-up and loading.
    """
    model_cfg, train_cfg = config["model"], config["training"]
    command = [
        sys.executable,
        str(PEERS),
        name,
        "--data",
        str(data_path),
        "--seeds",
        str(seeds),
        "--epochs",
        str(train_cfg["epochs"]),
        "--width",
        str(model_cfg["width"]),
        "--depth",
        str(point.depth),
        "--batch-size",
        str(train_cfg["batch_size"]),
        "--lr",
        str(point.lr),
        "--optimizer",
        point.optimizer,
        "--dtype",
        point.precision,
        "--device",
        args.device,
        "--threads",
        str(args.threads),
    ]
    environment = {k: v for k, v in os.environ.items() if k != "PYTORCH_NVML_BASED_CUDA_CHECK"}
    result = subprocess.run(command, check=True, capture_output=True, text=True, env=environment)
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def peak_memory(device: torch.device):
    """The GPU memory PyTorch allocated at most inside the block, in MiB (``{"mib": ...}``)."""
    memory = {"mib": math.nan}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    yield memory
    if device.type == "cuda":
        memory["mib"] = torch.cuda.max_memory_allocated(device) / 2**20


def flops_per_seed(split: data.Split, point: grid.Point, config: dict) -> float:
    """Floating-point operations one seed's training needs: matrix products only.

    Per example a forward pass costs 2 x (in x width + (depth - 1) x width^2 + width x classes);
    a training step is a forward and a backward pass (two products per layer): 3x that. The
    per-epoch probe is one forward pass over the training set, before training and after every
    epoch. Elementwise work (activations, the loss, the optimiser) is left out: a floor.
    """
    width, depth = config["model"]["width"], point.depth
    forward = 2 * (split.in_features * width + (depth - 1) * width**2 + width * split.classes)
    n, epochs = split.x_train.shape[0], config["training"]["epochs"]
    return forward * n * (3 * epochs + epochs + 1)


def relulab_point(
    point: grid.Point,
    config: dict,
    data_path: Path,
    seeds: int,
    out_dir: Path,
    tracking_uri: str | None,
) -> Timer:
    """Time for ``job.run_point`` to train ``seeds`` seeds of ``point``, outputs included."""
    config = {**config, "training": {**config["training"], "seeds": seeds}}
    shutil.rmtree(out_dir, ignore_errors=True)
    with Timer(torch.device(config["training"]["device"])) as timer:
        job.run_point(point, config, data_path, out_dir, tracking_uri)
    return timer


def batch_group(config: dict, point: grid.Point) -> list[grid.Point]:
    """The points the study trains as one model with ``point`` (``Point.model_key``)."""
    return [p for p in grid.expand(config) if p.model_key() == point.model_key()]


def relulab_group(
    points: list[grid.Point],
    config: dict,
    data_path: Path,
    seeds: int,
    root: Path,
    tracking_uri: str | None,
) -> Timer:
    """Time for ``job.run_points`` to train ``points`` (one model of ``len(points) x seeds``
    members, as a training job of the study trains them), outputs included."""
    config = {**config, "training": {**config["training"], "seeds": seeds}}
    shutil.rmtree(root, ignore_errors=True)
    with Timer(torch.device(config["training"]["device"])) as timer:
        job.run_points(points, config, data_path, tracking_uri, root=root)
    return timer


class TrackerClock:
    """Seconds spent inside relulab's MLflow calls (``tracking.PointTracker``'s public methods).

    Tracking on against off compares two whole training runs, whose difference on a shared
    machine is often smaller than their noise; the time inside the tracker is what tracking
    itself costs, measured directly.
    """

    METHODS = ("__init__", "start", "queue_rows", "log_rows", "flush", "finish")

    def __init__(self):
        self.wall = self.cpu = 0.0

    @contextlib.contextmanager
    def timing(self):
        self.wall = self.cpu = 0.0
        self.depth = 0
        originals = {name: getattr(tracking.PointTracker, name) for name in self.METHODS}

        def timed(method):
            def wrapper(*args, **kwargs):
                if self.depth:  # called by another timed method: counted there
                    return method(*args, **kwargs)
                self.depth += 1
                wall, cpu = time.perf_counter(), time.process_time()
                try:
                    return method(*args, **kwargs)
                finally:
                    self.wall += time.perf_counter() - wall
                    self.cpu += time.process_time() - cpu
                    self.depth -= 1

            return wrapper

        for name, method in originals.items():
            setattr(tracking.PointTracker, name, timed(method))
        try:
            yield self
        finally:
            for name, method in originals.items():
                setattr(tracking.PointTracker, name, method)


class Store:
    """A fresh MLflow experiment per tracked run, so no run is found again and skipped."""

    def __init__(self, root: Path):
        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.count = 0

    def new_experiment(self) -> str:
        self.count += 1
        name = f"bench-{self.count}"
        tracking_study.ensure_experiment(self.uri, name, self.root / "mlartifacts")
        return name


def per_seed_table(args, config: dict, split, data_path: Path, work: Path) -> pd.DataFrame:
    device = torch.device(args.device)
    point = find_point(config, args.point)
    config = {**config, "training": {**config["training"], "device": args.device}}
    store = Store(work / "store")
    flops = flops_per_seed(split, point, config)
    group = batch_group(config, point)
    print(
        f"point {point.id}: width {config['model']['width']}, depth {point.depth}, "
        f"batch {config['training']['batch_size']}, {config['training']['epochs']} epochs, "
        f"{point.optimizer}, {point.precision}, device {device}, torch threads "
        f"{args.threads}; {flops / 1e9:.2f} GFLOP per seed; tight loop timed on "
        f"{args.reference_seeds} seed(s), the ensembling recipe with S = {args.ensemble_seeds}; "
        f"as the study trains it, with {len(group)} points in one model: "
        f"{', '.join(p.id for p in group)}",
        flush=True,
    )
    # Warm-up: first-call costs (kernels, Lightning's lazy set-up) stay out of the timings.
    warm = {**config, "training": {**config["training"], "epochs": 1}}
    relulab_point(point, warm, data_path, 1, work / "warm", None)
    rows = []
    for repeat in range(args.repeats):
        gemm = peer("gemm", data_path, point, config, 1, args)
        rate = max(gemm["gflops_batch"], gemm["gflops_large"]) * 1e9
        tight = peer("tight", data_path, point, config, args.reference_seeds, args)
        ensemble = peer("ensemble", data_path, point, config, args.ensemble_seeds, args)
        for seeds in args.seeds:
            row = {
                "repeat": repeat,
                "S": seeds,
                "tight": tight["seconds"] / args.reference_seeds,
                "ensemble": ensemble["seconds"] / args.ensemble_seeds,
                "floor": flops / rate,
                "gemm_gflops": rate / 1e9,
            }
            out = work / "runs" / point.id
            with peak_memory(device) as memory:
                timer = relulab_point(point, config, data_path, seeds, out, None)
            row["relulab"] = timer.wall / seeds
            row.update({"relulab_gpu_mib": memory["mib"]} if device.type == "cuda" else {})
            members = len(group) * seeds
            with peak_memory(device) as memory:
                timer = relulab_group(group, config, data_path, seeds, work / "group", None)
            row["group"] = timer.wall / members
            row.update({"group_gpu_mib": memory["mib"]} if device.type == "cuda" else {})
            if not args.skip_tracking:
                tracked = {**config, "study": store.new_experiment()}
                with TrackerClock().timing() as clock:
                    timer = relulab_group(
                        group, tracked, data_path, seeds, work / "group", store.uri
                    )
                row["tracked"] = timer.wall / members
                row["in_tracker"] = clock.wall / members
            rows.append(row)
            shown = ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float))
            print(f"  repeat {repeat}, S {seeds}: {shown}", flush=True)
    return pd.DataFrame(rows)


def summarise_per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """Medians over repeats of per-seed times and of each repeat's ratios."""
    runs = runs.assign(
        vs_tight=runs.relulab / runs.tight,
        vs_ensemble=runs.relulab / runs.ensemble,
        vs_floor=runs.relulab / runs.floor,
        group_vs_ensemble=runs.group / runs.ensemble,
        group_vs_floor=runs.group / runs.floor,
    )
    if "tracked" in runs:
        runs = runs.assign(
            tracking_overhead=runs.tracked / runs.group - 1,
            in_tracker_share=runs.in_tracker / runs.tracked,
        )
    table = runs.drop(columns="repeat").groupby("S").median()
    table["seeds_per_s"] = 1 / table.relulab
    names = {
        "tight": "tight loop s/seed",
        "ensemble": "ensembling recipe s/seed",
        "floor": "FLOP floor s/seed",
        "relulab": "relulab s/seed",
        "vs_tight": "relulab / tight",
        "vs_ensemble": "relulab / recipe",
        "vs_floor": "relulab / floor",
        "group": "relulab as the study trains (points in one model) s/seed",
        "group_vs_ensemble": "as the study trains / recipe",
        "group_vs_floor": "as the study trains / floor",
        "tracked": "as the study trains + MLflow s/seed",
        "tracking_overhead": "MLflow on - off",
        "in_tracker_share": "time in MLflow calls / wall",
        "gemm_gflops": "GEMM GFLOP/s",
        "seeds_per_s": "relulab seeds/s",
        "relulab_gpu_mib": "relulab peak GPU MiB",
        "group_gpu_mib": "as the study trains: peak GPU MiB",
    }
    return table[[c for c in names if c in table]].rename(columns=names)


def startup_seconds(statement: str, repeats: int) -> float:
    """Median wall time of a fresh interpreter running ``statement`` (imports, mostly)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def end_to_end(args, config: dict, split, work: Path) -> dict:
    """The study through ``snakemake --cores N`` in a scratch copy: its wall time."""
    points = grid.expand(config)

    study = work / "study"
    study.mkdir(parents=True)
    shutil.copy(ROOT / "Snakefile", study / "Snakefile")
    for folder in ("workflow", "config", "docs"):
        shutil.copytree(ROOT / folder, study / folder)
    snakemake = Path(sys.executable).parent / "snakemake"
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    # As bin/study runs it: the local workflow profile.
    command = [
        str(snakemake),
        "--workflow-profile",
        "workflow/profiles/default",
        "--cores",
        str(args.cores),
        # The scratch copy is the study's folder (not studies/<study>/ below it).
        "--directory",
        str(study),
    ]
    if args.until:
        command += ["--until", *args.until]
    if args.config != ROOT / "config" / "config.yaml":
        command += ["--configfile", str(args.config.resolve())]
    print(f"end-to-end: {' '.join(command[1:])} ({len(points)} grid points)", flush=True)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=study, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed:\n{result.stderr[-4000:]}")
    summary = {"points": len(points), "seeds": len(cfg.seeds(config)), "snakemake s": wall}
    logs = sorted((study / ".snakemake" / "log").glob("*.snakemake.log"))
    jobs = job_seconds(logs[-1]) if logs else pd.DataFrame()
    tracked = tracking_seconds(study / "results" / "logs" / "train")
    summary["in MLflow calls s"] = tracked
    summary["MLflow / wall"] = tracked / wall
    if len(jobs):
        summary["MLflow / all jobs' s"] = tracked / jobs.total_s.sum()
    return {"summary": summary, "jobs": jobs}


def tracking_seconds(train_logs: Path) -> float:
    """The seconds the study's training jobs spent inside MLflow calls, summed over jobs (each
    logs ``job.TRACKING_TIME`` per group of points it trains)."""
    pattern = re.compile(re.escape(job.TRACKING_TIME) + r": ([\d.]+) s")
    return sum(
        float(match.group(1))
        for log in train_logs.glob("*.log")
        for match in pattern.finditer(log.read_text())
    )


def job_seconds(log: Path) -> pd.DataFrame:
    """Jobs and their summed wall seconds per rule, from Snakemake's log (1 s resolution)."""
    stamp = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
    rule = re.compile(r"^(?:local)?rule (\w+):$")
    jobid = re.compile(r"^\s+jobid: (\d+)$")
    finished = re.compile(r"^Finished job(?:id:)? (\d+)")
    now, pending = None, None
    started: dict[str, tuple[str, datetime.datetime]] = {}
    spans: list[tuple[str, float]] = []
    for line in log.read_text().splitlines():
        if match := stamp.match(line):
            now = datetime.datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        elif match := rule.match(line):
            pending = match.group(1)
        elif (match := jobid.match(line)) and pending is not None:
            started[match.group(1)] = (pending, now)
            pending = None
        elif (match := finished.match(line)) and match.group(1) in started:
            name, start = started.pop(match.group(1))
            spans.append((name, (now - start).total_seconds()))
    jobs = pd.DataFrame(spans, columns=["rule", "seconds"])
    return jobs.groupby("rule").seconds.agg(jobs="count", total_s="sum", mean_s="mean")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores visible, load average {os.getloadavg()[0]:.1f}"
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name(0)}"
    return text


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (rule train: 1)")
    parser.add_argument(
        "--point", help="grid point id (default: relu, f'(0) = 0, the middle learning rate)"
    )
    parser.add_argument("--epochs", type=int, help="override training.epochs (quick checks)")
    parser.add_argument(
        "--reference-seeds", type=int, default=2, help="seeds the tight loop trains per repeat"
    )
    parser.add_argument(
        "--ensemble-seeds", type=int, default=8, help="S of PyTorch's ensembling recipe"
    )
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    parser.add_argument(
        "--until", nargs="+", help="end-to-end: run only up to these rules (e.g. train)"
    )
    parser.add_argument("--skip-per-seed", action="store_true")
    parser.add_argument("--skip-tracking", action="store_true")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--skip-startup", action="store_true", help="no start-up timings")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    quiet()
    torch.set_num_threads(args.threads)
    config = cfg.validate(yaml.safe_load(args.config.read_text()))
    if args.epochs is not None:
        config["training"]["epochs"] = args.epochs
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}  {machine()}")
    print(f"torch {torch.__version__}, python {platform.python_version()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="relulab-bench-") as tmp:
        work = Path(tmp)
        data_path = data.prepare(config["dataset"], work / "data.npz", seed=config["data_seed"])
        split = data.load(data_path)

        if not args.skip_per_seed:
            runs = per_seed_table(args, config, split, data_path, work)
            print("\nPer-seed training time, medians over repeats:\n")
            print(summarise_per_seed(runs).to_markdown(floatfmt=".3f"))

        statement = "import torch, relulab.train.job"
        if not args.skip_startup:
            print(f"\nstart-up of a training process ({statement!r}):", end=" ")
            print(f"{startup_seconds(statement, 3):.2f} s", flush=True)
        if not args.skip_tracking and not args.skip_startup:
            statement = "import mlflow.tracking"
            seconds = startup_seconds(statement, 3)
            print(f"MLflow import ({statement!r}): {seconds:.2f} s", flush=True)

        if not args.skip_end_to_end:
            result = end_to_end(args, config, split, work)
            print()
            print(pd.DataFrame([result["summary"]]).to_markdown(index=False, floatfmt=".2f"))
            print("\nSnakemake jobs per rule (wall seconds from its log, 1 s resolution):\n")
            print(result["jobs"].to_markdown(floatfmt=".1f"))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
