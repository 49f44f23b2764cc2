"""benchmarks/compare_results.py: every CSV of two results folders compared, timings aside."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "compare_results.py"


def results(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def compare(a: Path, b: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(a), str(b)], capture_output=True, text=True
    )


EPOCHS = "seed,epoch,val_loss,wall_seconds\n0,0,0.5,1.25\n0,1,0.25,2.5\n"


def test_equal_cells_with_other_timings_are_identical(tmp_path):
    a = results(
        tmp_path / "a",
        {"runs/p/epochs.csv": EPOCHS, "tables/cost.csv": "device,median_s,relative\ncpu,1.0,2\n"},
    )
    b = results(
        tmp_path / "b",
        {
            "runs/p/epochs.csv": EPOCHS.replace("2.5", "9.75"),
            "tables/cost.csv": "device,median_s,relative\ncpu,3.0,1\n",
        },
    )
    done = compare(a, b)
    assert done.returncode == 0, done.stdout
    assert "identical  runs/p/epochs.csv (not compared: wall_seconds)" in done.stdout
    assert "2 of 2 CSV files identical" in done.stdout


def test_a_differing_cell_and_a_missing_file_are_reported(tmp_path):
    a = results(tmp_path / "a", {"runs/p/epochs.csv": EPOCHS, "tables/summary.csv": "x\n1\n"})
    b = results(tmp_path / "b", {"runs/p/epochs.csv": EPOCHS.replace("0.25", "0.250001")})
    done = compare(a, b)
    assert done.returncode == 1
    assert "DIFFERS    runs/p/epochs.csv" in done.stdout
    assert "line 3, val_loss: '0.25' != '0.250001'" in done.stdout
    assert "ONLY IN A  tables/summary.csv" in done.stdout
