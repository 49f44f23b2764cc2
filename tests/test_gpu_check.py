"""bin/gpu-check's logic, on the CPU: time boxes, per-part failures, the summary, and the
comparison of a study trained on two devices (on small tables written here)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # dataclasses look their module up there
spec.loader.exec_module(gpu_check)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_part_within_its_time_box_is_ok(tmp_path):
    outcome = gpu_check.run_part("p", [python("print('fine')")], 30, tmp_path / "p.log", {})
    assert outcome.ok
    assert (tmp_path / "p.log").read_text() == "fine\n"


def test_a_part_that_fails_names_its_status_and_last_lines(tmp_path):
    code = "import sys; print('first'); print('the reason'); sys.exit(3)"
    outcome = gpu_check.run_part("p", [python(code)], 30, tmp_path / "p.log", {})
    assert not outcome.ok
    assert outcome.lines[0].startswith("exit status [3]")
    assert outcome.lines[-1] == "the reason"


def test_a_part_that_outlasts_its_time_box_is_stopped(tmp_path):
    commands = [python("import time; time.sleep(60)"), python("print(1)")]
    outcome = gpu_check.run_part("p", commands, 1, tmp_path / "p.log", {})
    assert not outcome.ok
    assert outcome.seconds < 20
    assert "time box of 1 s ran out" in outcome.lines[0]


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_time_box_stops_what_the_part_started_too(tmp_path):
    pid_file = tmp_path / "pid"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    outcome = gpu_check.run_part("p", [python(code)], 3, tmp_path / "p.log", {})
    assert not outcome.ok
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(grandchild)


def test_summary_lines_pytest_counts_and_tables_are_read_from_output():
    text = "noise\nSUMMARY: one\nSUMMARY: two\n"
    assert gpu_check.summary_lines(text) == ["one", "two"]
    pytest_tail = "....\n=== 70 passed, 2 skipped, 700 deselected in 41.20s ===\n"
    assert gpu_check.pytest_counts(pytest_tail) == "70 passed, 2 skipped, 700 deselected in 41.20s"
    assert gpu_check.pytest_counts("crashed") == "no pytest result line"
    printed = "x\nPer-seed training time, medians:\n\n| S | a |\n|--:|--:|\n| 1 | 2 |\n\nafter\n"
    table = gpu_check.markdown_table_after(printed, "Per-seed training time")
    assert table == ["| S | a |", "|--:|--:|", "| 1 | 2 |"]


def test_the_speed_table_keeps_the_columns_the_summary_shows():
    table = ["| S | tight loop s/seed | GEMM GFLOP/s |", "|--:|--:|--:|", "| 8 | 0.5 | 90 |"]
    kept = gpu_check.select_columns(table, ("S", "tight loop s/seed"))
    assert kept == ["| S | tight loop s/seed |", "| --: | --: |", "| 8 | 0.5 |"]


def test_the_summary_names_every_failed_part():
    outcomes = [
        gpu_check.Outcome("tests", True, 3.0, ["71 passed"]),
        gpu_check.Outcome("study", False, 5.0, ["exit status [1]"]),
        gpu_check.Outcome("speed", False, 1.0, []),
    ]
    text = gpu_check.render(outcomes, "the GPU", 9.0)
    assert text.splitlines()[0] == "# GPU check on the GPU: FAILED: study, speed (9 s)"
    assert "## tests: ok (3 s)" in text
    assert "    exit status [1]" in text


def test_the_study_trains_the_smoke_config_on_the_device_it_is_given(tmp_path):
    command = gpu_check.study_command(sys.executable, tmp_path, "cuda", 4, reduced=False)
    assert command[command.index("--config") + 1] == "training={device: cuda}"
    assert command[command.index("--configfile") + 1].endswith("config/smoke.yaml")
    assert command[-1] == "results/tables/summary.csv"
    reduced = gpu_check.study_command(sys.executable, tmp_path, "cpu", 1, reduced=True)
    assert "training={device: cpu, points_per_job: 4}" in reduced


def write_study(root: Path, points: dict[str, dict]) -> Path:
    """A trained study's tables as the comparison reads them: ``points`` maps a point id to
    its per-seed (status, epoch-0 hash, final loss)."""
    runs = root / "results" / "runs"
    rows = []
    for point, seeds in points.items():
        (runs / point).mkdir(parents=True)
        epochs, layers, info = [], [], {}
        for seed, (status, start_hash, loss) in seeds.items():
            for epoch in (0, 1):
                epochs.append(
                    {"seed": seed, "epoch": epoch, "step": 10 * epoch, "val_loss": loss * epoch,
                     "exact_zeros": epoch, "status": status,
                     "params_sha256": start_hash if epoch == 0 else f"{loss}"}
                )  # fmt: skip
                layers.append({"seed": seed, "epoch": epoch, "layer": 1, "dead_fraction": 0.1})
            info[str(seed)] = {"status": status, "params_sha256": f"{loss}"}
        pd.DataFrame(epochs).to_csv(runs / point / "epochs.csv", index=False)
        pd.DataFrame(layers).to_csv(runs / point / "layers.csv", index=False)
        (runs / point / "point.json").write_text(json.dumps({"seeds": info}))
        rows.append({"point": point, "val_accuracy_mean": 0.5})
    (root / "results" / "tables").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "results/tables/summary.csv", index=False)
    return root


CPU = {"relu": {0: ("finished", "h0", 1.0), 1: ("finished", "h1", 2.0)}}


def test_studies_that_differ_only_in_rounding_agree(tmp_path):
    cpu = write_study(tmp_path / "cpu", CPU)
    gpu = write_study(tmp_path / "gpu", {"relu": {0: ("finished", "h0", 1.5), 1: CPU["relu"][1]}})
    problems, notes = gpu_check.compare_studies(cpu, gpu)
    assert problems == []
    assert "1 points, 2 seeds" in notes[0]
    assert re.search(r"val_loss 0\.5\b", notes[1])
    assert notes[2] == "final parameters bitwise equal for 1 of 2 seeds"


@pytest.mark.parametrize(
    "gpu_points, problem",
    [
        ({"relu": {0: ("diverged", "h0", 1.0), 1: CPU["relu"][1]}}, "seeds/status"),
        ({"relu": {0: ("finished", "other", 1.0), 1: CPU["relu"][1]}}, "untrained parameters"),
        ({"relu": {0: CPU["relu"][0]}}, "rows"),
        ({"elu": CPU["relu"]}, "grid points differ"),
    ],
)
def test_what_must_agree_is_reported_when_it_does_not(tmp_path, gpu_points, problem):
    cpu = write_study(tmp_path / "cpu", CPU)
    gpu = write_study(tmp_path / "gpu", gpu_points)
    problems, _ = gpu_check.compare_studies(cpu, gpu)
    assert any(problem in p for p in problems), problems


def test_every_test_that_needs_a_gpu_is_in_the_cuda_tier():
    """bin/gpu-check runs ``pytest -m cuda``: a GPU test without the marker would never run."""
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        blocks = re.split(r"\n(?=@|def |pytestmark)", path.read_text())
        for i, block in enumerate(blocks):
            if "skipif(not torch.cuda.is_available()" in block:
                marked = "pytest.mark.cuda" in block or (i and "mark.cuda" in blocks[i - 1])
                assert marked, f"{path.name}: a GPU test without @pytest.mark.cuda"


def test_time_boxes_can_be_changed_per_part(tmp_path):
    args = gpu_check.parse(["--time-box", "speed=200", "--time-box", "tests=90.5"])
    context = gpu_check.Context(sys.executable, False, tmp_path, {}, dict(args.time_box))
    assert context.budget("speed") == 200
    assert context.budget("tests") == 90.5
    assert context.budget("study") == gpu_check.BUDGET_GPU["study"]
    assert sum(gpu_check.BUDGET_GPU.values()) < 8 * 60
    with pytest.raises(SystemExit):
        gpu_check.parse(["--time-box", "nothing=3"])
