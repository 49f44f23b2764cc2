"""The GPU path checked end to end in one command, with one summary (``bin/gpu-check``).

Four parts, each in its own process with its own time box; a part that fails or runs out of
time is reported in the summary and the others still run; the exit status is 1 if any failed:

1. ``tests``: the CUDA tier of the test suite (``pytest -m cuda``: tests that skip without a GPU).
2. ``study``: the smoke study (``config/smoke.yaml``, training jobs and the summary table) in two
   scratch copies, with ``training.device: cuda`` and with ``cpu``, side by side; then the
   tables that must agree between the two are compared (``compare``), and what cannot agree is
   stated with its largest difference.
3. ``bifurcation``: the bifurcation cell 3x256 (the default study's dataset and batch size) in
   float32 with TF32 off, with TF32 on, and in float16: fraction of initialisations whose
   gradients differ between ReLU'(0) = 0 and 1, exact zeros per pre-activation, seconds.
4. ``speed``: ``benchmarks/train_speed.py --device cuda`` (tight loop, ensembling recipe and
   relulab at S = 1, 8, 64, 256: seconds per seed, seeds per second, relulab's peak GPU memory).

On one GPU (H100 class) the whole check is sized to end within 8 minutes. ``--dry-run-cpu``
runs every part on the CPU with reduced sizes (the "GPU" study then trains on the CPU too, so
its comparison must find the two studies equal): it checks the script, not the GPU.

The environment is the one ``bin/setup`` makes (``.venv``); ``bin/gpu-check`` runs this file
with it (or with ``$PYTHON``) and ``PYTHONPATH=src``. On a machine without network whose Python
has torch but not all of relulab's other dependencies, ``--wheels DIR`` installs the wheels in
DIR (no index, no dependency resolution) into a scratch folder first; the ``environment`` line of
the summary names the modules still missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("tests", "study", "bifurcation", "speed")
# Time boxes in seconds (the study's includes its comparison, COMPARE_BOX); their sum stays
# under 8 minutes on one GPU. The CPU dry run is slower.
# The bifurcation's includes generating mnist1d_60k (about 40 s of one core).
BUDGET_GPU = {"tests": 120, "study": 120, "bifurcation": 90, "speed": 140}
BUDGET_CPU = {"tests": 300, "study": 400, "bifurcation": 120, "speed": 300}
COMPARE_BOX = 45
NEEDED = ("torch", "lightning", "mlflow", "snakemake", "mnist1d", "pandas", "pytest", "relulab")
# Columns of a training job's epoch rows that cannot agree between devices: floats computed by
# different kernels (summation order, TF32, fused operations) and what they decide.
DEVICE_DEPENDENT = ("train_loss", "val_loss", "val_accuracy", "dead_fraction",
                    "inactive_fraction", "exact_zeros", "live_exact_zeros",
                    "dead_at_inference_fraction", "inactive_at_inference_fraction")  # fmt: skip


@dataclass
class Outcome:
    """One part's result: ``ok`` False when it failed or ran out of time."""

    part: str
    ok: bool
    seconds: float
    lines: list[str] = field(default_factory=list)


# --- running parts ------------------------------------------------------------------------------


def run_part(part: str, commands: list[list[str]], budget: float, log: Path, env: dict) -> Outcome:
    """Run ``commands`` side by side (each its own process) within ``budget`` seconds; their
    output goes to ``log``. Not ok if any exits non-zero or the time box ends first."""
    start = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        # Each in its own process group, so that a time box stops what it started too (Snakemake's
        # jobs, pytest's workers).
        processes = [
            subprocess.Popen(
                c, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            for c in commands
        ]
        timed_out = False
        for process in processes:
            left = budget - (time.perf_counter() - start)
            try:
                process.wait(timeout=max(left, 0.1))
            except subprocess.TimeoutExpired:
                timed_out = True
                for running in processes:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(running.pid, signal.SIGKILL)
                    running.wait()
                break
    seconds = time.perf_counter() - start
    codes = [p.returncode for p in processes]
    if timed_out:
        return Outcome(part, False, seconds, [f"time box of {budget:.0f} s ran out (log: {log})"])
    if any(codes):
        tail = [line for line in log.read_text().splitlines() if line.strip()][-6:]
        return Outcome(part, False, seconds, [f"exit status {codes} (log: {log})", *tail])
    return Outcome(part, True, seconds)


def summary_lines(text: str) -> list[str]:
    """The lines a part prints for the summary (``SUMMARY: ...``)."""
    return [line[len("SUMMARY: ") :] for line in text.splitlines() if line.startswith("SUMMARY: ")]


def pytest_counts(text: str) -> str:
    """pytest's closing line (``== 71 passed, 2 skipped in 40.1s ==``) without its frame."""
    for line in reversed(text.splitlines()):
        if re.search(r"\d+ (passed|failed|skipped|deselected|error)", line):
            return line.strip(" =")
    return "no pytest result line"


def markdown_table_after(text: str, heading: str) -> list[str]:
    """The markdown table printed after the line containing ``heading``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if heading in line:
            table = []
            for row in lines[i + 1 :]:
                if row.startswith("|"):
                    table.append(row)
                elif table:
                    break
            return table
    return []


SPEED_COLUMNS = ("S", "tight loop s/seed", "ensembling recipe s/seed", "relulab s/seed",
                 "relulab seeds/s", "relulab peak GPU MiB",
                 "relulab as the study trains (points in one model) s/seed",
                 "as the study trains: peak GPU MiB")  # fmt: skip


def select_columns(table: list[str], wanted: tuple[str, ...]) -> list[str]:
    """The markdown ``table`` with only the ``wanted`` columns that it has, in its order."""
    if len(table) < 2:
        return table
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table]
    keep = [i for i, name in enumerate(rows[0]) if name in wanted]
    return ["| " + " | ".join(row[i] for i in keep) + " |" for row in rows]


def scratch_study(target: Path) -> Path:
    """The workflow copied into ``target`` as a user's clone (what the tests run)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", target / "Snakefile")
    for folder in ("workflow", "config", "docs"):
        shutil.copytree(ROOT / folder, target / folder, dirs_exist_ok=True)
    return target


def study_command(python: str, workdir: Path, device: str, cores: int, reduced: bool) -> list:
    """The smoke study's training and summary table, trained on ``device``."""
    if reduced:  # 4 points (ReLU f'(0) = 0 and 1, ELU, the depth study's ReLU) in one job
        overrides = [f"training={{device: {device}, points_per_job: 4}}", "activation=[relu, elu]"]
    else:
        overrides = [f"training={{device: {device}}}"]
    snakemake = Path(python).parent / "snakemake"
    runner = [str(snakemake)] if snakemake.exists() else [python, "-m", "snakemake"]
    return [*runner, "--directory", str(workdir), "--snakefile", str(workdir / "Snakefile"),
            "--workflow-profile", str(workdir / "workflow/profiles/default"),
            "--cores", str(cores), "--configfile", str(workdir / "config/smoke.yaml"),
            "--config", *overrides, "--", "results/tables/summary.csv"]  # fmt: skip


# --- the parts that run in their own process (python gpu_check.py <part> ...) ---------------------


def compare_studies(reference: Path, other: Path) -> tuple[list[str], list[str]]:
    """The smoke study trained twice (``reference`` on the CPU, ``other`` on the GPU): the
    disagreements among what must agree, and notes on what cannot.

    Must agree: the grid points (summary rows and ``results/runs``), each point's seeds and
    their status (finished or diverged), the epoch and layer rows that exist (seed, epoch,
    layer), the columns of every table, the optimiser steps, and the parameters' hash at epoch
    0 (models are initialised on the CPU, then moved, so they start bitwise equal). Cannot
    agree: losses, accuracies, dead/inactive fractions and exact-zero counts, and the
    parameters after training: the GPU's kernels round differently, and a different rounding
    at one step changes every later one.
    """
    import pandas as pd

    problems: list[str] = []
    notes: list[str] = []

    def expect(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    a_sum = pd.read_csv(reference / "results/tables/summary.csv")
    b_sum = pd.read_csv(other / "results/tables/summary.csv")
    expect(list(a_sum.columns) == list(b_sum.columns), "summary.csv: columns differ")
    expect(len(a_sum) == len(b_sum), f"summary.csv: {len(a_sum)} rows against {len(b_sum)}")
    text = [c for c in a_sum.columns if c in b_sum and a_sum[c].dtype == object]
    if len(a_sum) == len(b_sum) and text:
        expect(a_sum[text].equals(b_sum[text]), f"summary.csv: the points ({text}) differ")
    a_points = sorted(p.name for p in (reference / "results/runs").iterdir())
    b_points = sorted(p.name for p in (other / "results/runs").iterdir())
    expect(a_points == b_points, f"grid points differ: {a_points} against {b_points}")
    largest: dict[str, float] = {}
    final_hashes_equal = 0
    for point in sorted(set(a_points) & set(b_points)):
        a_dir, b_dir = reference / "results/runs" / point, other / "results/runs" / point
        a_json = json.loads((a_dir / "point.json").read_text())["seeds"]
        b_json = json.loads((b_dir / "point.json").read_text())["seeds"]
        a_status = {s: v.get("status") for s, v in a_json.items()}
        b_status = {s: v.get("status") for s, v in b_json.items()}
        expect(a_status == b_status, f"{point}: seeds/status {a_status} against {b_status}")
        final_hashes_equal += sum(
            a_json[s].get("params_sha256") == b_json.get(s, {}).get("params_sha256") for s in a_json
        )
        for name, keys in (("epochs.csv", ["seed", "epoch"]), ("layers.csv", None)):
            a, b = pd.read_csv(a_dir / name), pd.read_csv(b_dir / name)
            expect(list(a.columns) == list(b.columns), f"{point}/{name}: columns differ")
            keys = keys or [c for c in ("seed", "epoch", "layer") if c in a]
            if not set(keys) <= set(a.columns) & set(b.columns):
                continue
            expect(a[keys].equals(b[keys]), f"{point}/{name}: the rows ({keys}) differ")
            if name != "epochs.csv" or len(a) != len(b):
                continue
            for column in ("step", "status"):
                expect(a[column].equals(b[column]), f"{point}/epochs.csv: {column} differs")
            start_a, start_b = a[a.epoch == 0], b[b.epoch == 0]
            expect(
                start_a["params_sha256"].tolist() == start_b["params_sha256"].tolist(),
                f"{point}: the untrained parameters differ (epoch 0 hash)",
            )
            for column in DEVICE_DEPENDENT:
                if column in a and column in b:
                    difference = (a[column] - b[column]).abs().max()
                    if not math.isnan(difference):
                        largest[column] = max(largest.get(column, 0.0), float(difference))
    seeds = sum(len(json.loads((reference / "results/runs" / p / "point.json").read_text())
                    ["seeds"]) for p in a_points)  # fmt: skip
    notes.append(
        f"{len(a_points)} points, {seeds} seeds: points, seeds and status, rows, columns, "
        "steps and the epoch-0 parameter hash checked"
    )
    shown = ", ".join(f"{k} {v:.3g}" for k, v in largest.items())
    notes.append(f"cannot agree (device rounding), largest |difference|: {shown or 'none'}")
    notes.append(f"final parameters bitwise equal for {final_hashes_equal} of {seeds} seeds")
    return problems, notes


def compare_main(argv: list[str]) -> int:
    reference, other = Path(argv[0]), Path(argv[1])
    problems, notes = compare_studies(reference, other)
    for line in notes:
        print(f"SUMMARY: {line}")
    for line in problems:
        print(f"SUMMARY: MUST AGREE, DOES NOT: {line}")
    return 1 if problems else 0


def bifurcation_main(argv: list[str]) -> int:
    """The cell 3x256 in float32 (TF32 off, on) and float16 on ``--device``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dataset", default="mnist1d_60k")
    parser.add_argument("--inits", type=int, default=64)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args(argv)
    import torch
    import yaml

    from relulab.data import prepared as data
    from relulab.experiments import bifurcation
    from relulab.study import config as cfg

    defaults = cfg.validate(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    settings = defaults["bifurcation"]
    path = data.prepare(args.dataset, args.work / f"{args.dataset}.npz")
    split = data.load(path, inputs=settings["inputs"])
    cells = [("float32, TF32 off", "float32", False), ("float32, TF32 on", "float32", True)]
    cells.append(("float16", "float16", False))
    for label, precision, tf32 in cells:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        start = time.perf_counter()
        per_init = bifurcation.measure(
            split.x_train, split.y_train, precision, 256, 3, settings["batch_size"], args.inits,
            device=args.device, dataset=args.dataset, inputs=settings["inputs"],
            compare=settings["compare"],
        )  # fmt: skip
        seconds = time.perf_counter() - start
        row = bifurcation.table(per_init).iloc[0]
        if row["exact_zeros"]:
            rate = (
                f"{row['exact_zeros']} exact zeros, {row['exact_zero_rate']:.2g} per pre-activation"
            )
        else:
            rate = f"no exact zero (rate < {row['exact_zero_rate_ci_high']:.2g}, 95 %)"
        print(
            f"SUMMARY: 3x256 {label} on {row['device']}: {row['differ']}/{row['inits']} inits "
            f"differ ({row['fraction_differ']:.0%}, 95 % {row['ci_low']:.0%}-{row['ci_high']:.0%}"
            f"); {rate}; {row['pre_activations_per_init']:,} pre-activations per init; "
            f"{seconds:.1f} s",
            flush=True,
        )
    return 0


# --- the check ---------------------------------------------------------------------------------


def environment(python: str, env: dict) -> Outcome:
    """The interpreter, torch, the GPU and the needed modules that are missing."""
    code = (
        "import importlib.util, platform, sys\n"
        f"missing = [m for m in {NEEDED!r} if importlib.util.find_spec(m) is None]\n"
        "line = f'Python {platform.python_version()} ({sys.executable})'\n"
        "try:\n"
        "    import torch\n"
        "    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'\n"
        "    line += f'; torch {torch.__version__}; {gpu}'\n"
        "except ImportError:\n"
        "    pass\n"
        "print(line + ('; missing: ' + ', '.join(missing) if missing else '; modules all there'))\n"
        "sys.exit(1 if missing else 0)\n"
    )
    start = time.perf_counter()
    result = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True)
    lines = (result.stdout + result.stderr).strip().splitlines()[-3:]
    return Outcome("environment", result.returncode == 0, time.perf_counter() - start, lines)


def install_wheels(python: str, wheels: Path, target: Path, env: dict) -> None:
    """Install the wheels in ``wheels`` into ``target`` (offline, as they are) and put it first
    on the children's PYTHONPATH."""
    found = sorted(str(p) for p in wheels.glob("*.whl"))
    if found:
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
             "--target", str(target), *found], check=True, env=env,
        )  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join([str(target), env["PYTHONPATH"]])
    snakemake = target / "bin" / "snakemake"
    if snakemake.exists():
        env["PATH"] = os.pathsep.join([str(target / "bin"), env.get("PATH", "")])


@dataclass
class Context:
    """What every part runs with."""

    python: str
    dry: bool
    work: Path
    env: dict
    boxes: dict[str, float] = field(default_factory=dict)

    @property
    def device(self) -> str:
        return "cpu" if self.dry else "cuda"

    def budget(self, part: str) -> float:
        return self.boxes.get(part) or (BUDGET_CPU if self.dry else BUDGET_GPU)[part]

    def log(self, name: str) -> Path:
        return self.work / "logs" / f"{name}.log"


def tests_part(c: Context) -> Outcome:
    command = [c.python, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    outcome = run_part("tests", [command], c.budget("tests"), c.log("tests"), c.env)
    outcome.lines.insert(0, pytest_counts(c.log("tests").read_text()))
    return outcome


def study_part(c: Context) -> Outcome:
    """The smoke study on the GPU and on the CPU, side by side, then ``compare``."""
    budget = c.budget("study") - COMPARE_BOX
    # The "gpu" study trains on the GPU (on the CPU in the dry run).
    studies = {name: c.work / f"study-{name}" for name in ("cpu", "gpu")}
    for folder in studies.values():
        shutil.rmtree(folder, ignore_errors=True)
        scratch_study(folder)
    cores = max(1, (os.cpu_count() or 2) // (1 if c.dry else 2))
    commands = [
        study_command(c.python, studies["cpu"], "cpu", cores, c.dry),
        study_command(c.python, studies["gpu"], c.device, cores, c.dry),
    ]
    outcome = run_part("study", commands, budget, c.log("study"), c.env)
    if not outcome.ok:
        return outcome
    command = [c.python, __file__, "compare", str(studies["cpu"]), str(studies["gpu"])]
    compared = run_part("study", [command], COMPARE_BOX, c.log("study-compare"), c.env)
    compared.seconds += outcome.seconds
    compared.lines += summary_lines(c.log("study-compare").read_text())
    return compared


def bifurcation_part(c: Context) -> Outcome:
    command = [c.python, __file__, "bifurcation", "--device", c.device, "--work", str(c.work)]
    command += ["--dataset", "mnist1d", "--inits", "2"] if c.dry else []
    outcome = run_part(
        "bifurcation", [command], c.budget("bifurcation"), c.log("bifurcation"), c.env
    )
    outcome.lines += summary_lines(c.log("bifurcation").read_text())
    return outcome


def speed_part(c: Context) -> Outcome:
    command = [c.python, str(ROOT / "benchmarks/train_speed.py"), "--device", c.device,
               "--repeats", "1", "--skip-end-to-end", "--skip-tracking",
               "--skip-startup"]  # fmt: skip
    if c.dry:
        command += ["--seeds", "1", "2", "--epochs", "1", "--reference-seeds", "1"]
        command += ["--ensemble-seeds", "2"]
    else:
        command += ["--seeds", "1", "8", "64", "256", "--ensemble-seeds", "64"]
    outcome = run_part("speed", [command], c.budget("speed"), c.log("speed"), c.env)
    table = markdown_table_after(c.log("speed").read_text(), "Per-seed training time")
    outcome.lines += select_columns(table, SPEED_COLUMNS)
    return outcome


RUNNERS = {"tests": tests_part, "study": study_part, "bifurcation": bifurcation_part,
           "speed": speed_part}  # fmt: skip


def check(args: argparse.Namespace) -> list[Outcome]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT / "src"), env.get("PYTHONPATH")] if p)
    env.pop("MLFLOW_TRACKING_URI", None)
    if args.wheels:
        install_wheels(args.python, args.wheels, args.out / "site", env)
    context = Context(args.python, args.dry_run_cpu, args.out, env, dict(args.time_box))
    outcomes = [environment(args.python, env)]
    if not context.dry and "no GPU" in " ".join(outcomes[0].lines):
        outcomes[0].ok = False
        outcomes[0].lines.append("no CUDA device: the GPU parts will fail (--dry-run-cpu?)")
    print(f"environment: {'; '.join(outcomes[0].lines)}", flush=True)
    for part in [p for p in PARTS if p in args.parts]:
        print(f"{part}: running (time box {context.budget(part):.0f} s)", flush=True)
        outcome = RUNNERS[part](context)
        print(f"{part}: {'ok' if outcome.ok else 'FAILED'} in {outcome.seconds:.0f} s", flush=True)
        outcomes.append(outcome)
    return outcomes


def render(outcomes: list[Outcome], device: str, total: float) -> str:
    failed = [o.part for o in outcomes if not o.ok]
    verdict = f"FAILED: {', '.join(failed)}" if failed else "all parts ok"
    lines = [f"# GPU check on {device}: {verdict} ({total:.0f} s)", ""]
    for outcome in outcomes:
        lines.append(
            f"## {outcome.part}: {'ok' if outcome.ok else 'FAILED'} ({outcome.seconds:.0f} s)"
        )
        lines += [f"    {line}" if not line.startswith("|") else line for line in outcome.lines]
        lines.append("")
    return "\n".join(lines)


def time_box(text: str) -> tuple[str, float]:
    part, _, seconds = text.partition("=")
    if part not in PARTS or not seconds.replace(".", "", 1).isdigit():
        raise argparse.ArgumentTypeError(f"expected PART=SECONDS with PART in {', '.join(PARTS)}")
    return part, float(seconds)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run-cpu", action="store_true", help="every part on the CPU, small")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--out", type=Path, help="logs, scratch studies and summary.md here")
    parser.add_argument("--wheels", type=Path, help="install these wheels first (offline)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter of the parts")
    parser.add_argument(
        "--time-box",
        type=time_box,
        action="append",
        default=[],
        metavar="PART=SECONDS",
        help=f"change a part's time box (GPU: {BUDGET_GPU})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        return compare_main(argv[1:])
    if argv[:1] == ["bifurcation"]:
        return bifurcation_main(argv[1:])
    args = parse(argv)
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="relulab-gpu-check-"))
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    outcomes = check(args)
    device = "the CPU (dry run)" if args.dry_run_cpu else "the GPU"
    text = render(outcomes, device, time.perf_counter() - start)
    (args.out / "summary.md").write_text(text + "\n")
    print("\n" + text)
    print(f"(logs and scratch studies in {args.out})")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
