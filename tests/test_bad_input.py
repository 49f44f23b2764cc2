"""Malformed configs stop ``snakemake`` before any job: one message, key and what is allowed.

Each config is a real ``snakemake`` run in a fresh copy of the workflow (written as YAML text, as
a user would: ``.nan``, ``.inf``, a quoted number, PyYAML reading ``1e-3`` as a string). The
runs are independent, so they go in parallel; each must fail while the workflow is parsed, print
exactly one ``relulab: invalid configuration`` line naming the key and what it allows, and leave
``results/`` uncreated.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers.workflow import ROOT, scratch_copy, snakemake

# (case, config file text or None, extra command-line arguments, key, what is allowed)
CASES = [
    ("unknown activation", "activation: [relu, swish]", [], "activation[1]", "one of relu"),
    ("empty activation list", "activation: []", [], "'activation'", "must not be empty"),
    ("zero_grad NaN", "zero_grad: [0.0, .nan]", [], "zero_grad[1]", "finite"),
    ("zero_grad infinite", "zero_grad: [.inf]", [], "zero_grad[0]", "finite"),
    ("zero_grad minus infinite", "zero_grad: [-.inf]", [], "zero_grad[0]", "finite"),
    ("negative lr", "lr: [0.1, -0.1]", [], "lr[1]", "a number > 0"),
    ("zero lr", "lr: [0]", [], "lr[0]", "a number > 0"),
    ("lr as a quoted string", 'lr: ["0.1"]', [], "lr[0]", "drop the quotes"),
    ("lr 1e-3 (a string to YAML)", "lr: [1e-3]", [], "lr[0]", "drop the quotes"),
    ("lr as a word", "lr: [fast]", [], "lr[0]", "a number > 0"),
    ("lr NaN", "lr: [.nan]", [], "lr[0]", "finite"),
    ("epochs 0", "training: {epochs: 0}", [], "training.epochs", "an integer >= 1"),
    ("seeds 0", "training: {seeds: 0}", [], "training.seeds", "an integer >= 1"),
    ("unknown precision", "training: {precision: float8}", [], "training.precision", "float64"),
    ("unknown optimizer", "training: {optimizer: lbfgs}", [], "training.optimizer", "adam"),
    ("unknown dataset", "dataset: imagenet", [], "'dataset'", "one of mnist1d"),
    ("width 0", "model: {width: 0}", [], "model.width", "an integer >= 1"),
    ("width -8", "model: {width: -8}", [], "model.width", "an integer >= 1"),
    ("width 2.5", "model: {width: 2.5}", [], "model.width", "an integer"),
    ("width as text", "model: {width: wide}", [], "model.width", "an integer"),
    ("depth not positive", "model: {depth: [2, 0]}", [], "model.depth", "integer"),
    ("unknown top-level key", "learning_rate: [0.1]", [], "learning_rate", "allowed keys"),
    ("unknown nested key", "model: {widht: 10}", [], "widht", "allowed keys: "),
    ("bad value on the command line", None, ["--config", "lr=[-1]"], "lr[0]", "> 0"),
    ("width a billion", "model: {width: 1000000000}", [], "model.width", "max_memory_gb"),
    ("a million seeds", "training: {seeds: 1000000}", [], "training.seeds", "max_memory_gb"),
    ("epochs 1.0e+9", "training: {epochs: 1.0e+9}", [], "training.epochs", "<= 100000"),
    (
        "tracking_uri without scheme",
        "tracking_uri: results/mlflow.db",
        [],
        "tracking_uri",
        "matching",
    ),
]
MESSAGE = "relulab: invalid configuration: "


def attempt(workdir: Path, text: str | None, extra: list[str]):
    # The target is the cheapest job, so that a config let through fails fast, not after a study.
    args = ["results/mlflow/experiment.json", "--cores", "1"]
    if text is not None:
        (workdir / "config" / "bad.yaml").write_text(text + "\n")
        args += ["--configfile", "config/bad.yaml"]
    return snakemake(workdir, *args, *extra, check=False, timeout=600)


@pytest.fixture(scope="module")
def attempts(tmp_path_factory):
    """Every case run once, two at a time (each is a Snakemake start-up, nothing more)."""
    root = tmp_path_factory.mktemp("bad_input")
    workdirs = {case[0]: scratch_copy(root / f"case{i}") for i, case in enumerate(CASES)}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2)) as pool:
        futures = {
            name: pool.submit(attempt, workdirs[name], text, extra)
            for name, text, extra, *_ in CASES
        }
        return {name: (workdirs[name], future.result()) for name, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case, text, extra, key, allowed", CASES, ids=[c[0] for c in CASES])
def test_bad_config_stops_before_any_job(attempts, case, text, extra, key, allowed):
    workdir, result = attempts[case]
    output = result.stdout + result.stderr
    assert result.returncode != 0
    messages = [line for line in output.splitlines() if MESSAGE in line]
    assert len(messages) == 1, output
    assert key in messages[0], messages[0]
    assert allowed in messages[0], messages[0]
    assert "Traceback" not in output
    assert "Building DAG" not in output, "failed only after parsing"
    assert not re.search(r"^(local)?rule \w+:", output, flags=re.MULTILINE), "a job started"
    assert not (workdir / "results").exists()


def snapshot(folder: Path) -> dict:
    return {
        path: (path.stat().st_mtime_ns, path.read_bytes() if path.is_file() else None)
        for path in folder.rglob("*")
    }


@pytest.mark.slow
def test_bad_config_leaves_existing_results_untouched(tmp_path):
    workdir = scratch_copy(tmp_path / "study")
    earlier = workdir / "results" / "runs" / "relu_zg0_lr0.1_sgd_float32_d3_nobn"
    earlier.mkdir(parents=True)
    (earlier / "point.json").write_text('{"point": "an earlier study"}\n')
    (workdir / "results" / "mlflow.db").write_bytes(b"not touched")
    before = snapshot(workdir / "results")
    result = attempt(workdir, "training: {epochs: 0}", [])
    assert result.returncode != 0
    assert snapshot(workdir / "results") == before


@pytest.mark.slow
def test_wildcards_outside_the_grid_are_refused(tmp_path):
    workdir = scratch_copy(tmp_path / "study")
    refusals = {
        "results/runs/x;touch INJECTED/point.json": "MissingRuleException",
        "results/runs/relu_zg0_lr9_float32_d2_nobn/point.json": "MissingRuleException",
    }
    for target, refusal in refusals.items():
        result = snakemake(
            workdir, target, "--cores", "1", "--configfile", "config/smoke.yaml", check=False
        )
        assert result.returncode != 0, target
        assert refusal in result.stdout + result.stderr, target
    assert not (workdir / "INJECTED").exists()
    assert not (workdir / "results").exists()


def test_no_rule_runs_shell_code():
    """Config values reach jobs only as script parameters, never inside a shell command."""
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            assert not re.match(r"\s+(shell|run):", line), f"{path.name}:{number}: {line}"
