"""The README's "Monitor your own training" examples run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from relulab import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "monitor_lightning.py"


def _python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Monitor your own training\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_plain_pytorch_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_blocks()[0], "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed[:4]] == ["0", "100", "200", "300"]
    assert "dead_fraction" in printed[4]


def test_the_readme_shows_the_lightning_example_file_as_it_is():
    assert _python_blocks()[1] == EXAMPLE.read_text()


@pytest.mark.slow
def test_the_lightning_example_trains_and_audit_prints_its_last_check(tmp_path, capsys):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env, check=True)
    (checkpoint,) = tmp_path.glob("monitored/*/*/checkpoints/*.ckpt")
    checks = pd.read_csv(tmp_path / "monitored" / "relulab_monitor" / "layers.csv")
    assert sorted(set(checks["step"])) == [0, 4, 8, 12]
    assert (tmp_path / "mlflow.db").exists()
    sys.path.insert(0, str(ROOT))
    try:
        cli.main(
            [
                "audit",
                "examples.monitor_lightning:resnet",
                "--checkpoint",
                str(checkpoint),
                "--data",
                "examples.monitor_lightning:images",
                "--probe-size",
                "128",
                "--out",
                str(tmp_path / "audit"),
            ]
        )
    finally:
        sys.path.remove(str(ROOT))
    audited = pd.read_csv(tmp_path / "audit" / "layers.csv")
    last = checks[checks["step"] == 12].reset_index(drop=True)
    assert len(audited) == len(last) == 17  # ResNet-18: the stem's ReLU and 2 calls per block
    for column in ("dead_fraction", "dead_at_inference_fraction", "sparsity", "exact_zeros"):
        assert audited[column].tolist() == last[column].tolist(), column
    assert audited["pre_activation_grad_rms"].tolist() == last["pre_activation_grad_rms"].tolist()
