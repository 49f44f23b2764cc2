"""The ``relulab`` command: help that lists the commands, ``status`` read from a study's files,
``ui`` bound to 127.0.0.1."""

from __future__ import annotations

import logging
import time

import pytest

from relulab import cli
from relulab.train.job import progress_line


def test_help_lists_every_command_with_one_line(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    shown = capsys.readouterr().out
    for command in ("status", "ui", "fetch"):
        assert f"    {command} " in shown


def log_progress(path, point, epoch, epochs=4, seconds=2.0):
    """A line as a training job logs it (relulab.study.logs's format)."""
    rows = [{"seed": s, "epoch": epoch, "val_accuracy": 0.5, "dead_fraction": 0.1} for s in (0, 1)]
    record = logging.LogRecord("relulab.train.job", logging.INFO, "", 0, "%s", None, None)
    record.msg = progress_line(point, rows, epochs, seconds)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(formatter.format(record) + "\n")


def test_status_counts_done_training_and_left_points_and_estimates_the_rest(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "point.json").write_text("{}")
    (tmp_path / "runs" / "c" / "checkpoints").mkdir(parents=True)
    log = tmp_path / "logs" / "train" / "job.log"
    log_progress(log, "b", 1)
    log_progress(log, "b", 3)
    status = cli.study_status(["a", "b", "c", "d"], 4, tmp_path, time.time())
    assert status.done == ["a"] and status.left == ["d"]
    assert status.training["b"].epoch == 3 and status.training["c"] is None
    assert status.active_jobs == 1
    # Left: 1 epoch of b, 4 of c, 4 of d, at 2 s each, one job.
    assert status.eta_seconds() == pytest.approx(18.0)
    text = cli.format_status("study", status, time.time())
    assert "4 grid points: 1 done, 2 in training, 1 left" in text
    assert "b: epoch 3/4" in text and "ETA of training: about 18 s" in text


def test_status_of_a_finished_study_says_where_to_look(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "point.json").write_text("{}")
    status = cli.study_status(["a"], 4, tmp_path, time.time())
    assert "results/findings.md" in cli.format_status("study", status, time.time())


def test_ui_serves_the_study_store_on_localhost_only(tmp_path, monkeypatch, capsys):
    (tmp_path / "mlflow.db").write_text("")
    config = tmp_path / "study.yaml"
    config.write_text(f"study: s\ntracking_uri: sqlite:///{tmp_path}/mlflow.db\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    started = []
    monkeypatch.setattr(cli.os, "execve", lambda program, argv, env: started.append((argv, env)))
    cli.main(["ui", "--configfile", str(config), "--port", "5999"])
    ((argv, env),) = started
    assert "starlette" in env["PYTHONWARNINGS"]  # MLflow's own deprecation warnings filtered
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "5999"
    assert argv[argv.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path}/mlflow.db"
    assert "http://127.0.0.1:5999" in capsys.readouterr().out
