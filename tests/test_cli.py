"""The ``relulab`` command: help that lists the commands, ``status`` read from a study's files,
``ui`` bound to 127.0.0.1."""

from __future__ import annotations

import logging
import os
import time

import pytest
import yaml

from relulab import cli
from relulab.study import grid, watch, where
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
    results = tmp_path / "studies" / "s" / "results"
    (results / "runs" / "a").mkdir(parents=True)
    (results / "runs" / "a" / "point.json").write_text("{}")
    status = cli.study_status(["a"], 4, results, time.time())
    text = cli.format_status("s", status, time.time(), results)
    assert f"{results}/findings.md" in text


def test_status_of_a_study_without_jobs_says_not_started(tmp_path):
    status = cli.study_status(["a", "b"], 4, tmp_path / "results", time.time())
    text = cli.format_status("s", status, time.time())
    assert "0 done, 0 in training, 2 left" in text
    assert "Not started" in text and "stopped?" not in text
    # Once a training job has logged, a silent study is no longer "not started".
    log_progress(tmp_path / "results" / "logs" / "train" / "job.log", "a", 1)
    status = cli.study_status(["a", "b"], 4, tmp_path / "results", time.time() + 600)
    assert "Not started" not in cli.format_status("s", status, time.time() + 600)


def test_help_says_how_to_run_a_study(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    shown = capsys.readouterr().out
    assert "bin/study --configfile config/smoke.yaml" in shown and "studies/<study>/" in shown
    assert "bin/study -n" in shown


def project(root, studies: dict[str, float]):
    """A project folder with one config per study in ``studies`` (name -> when it last ran,
    or None for a study that never ran) and that study's folder."""
    (root / "Snakefile").write_text("")
    (root / "config").mkdir()
    for name, when in studies.items():
        config = {"study": name, "activation": ["relu"], "lr": [0.1], "zero_grad": [0.0]}
        config["training"] = {"epochs": 2, "seeds": 1}
        (root / "config" / f"{name}.yaml").write_text(yaml.safe_dump(config))
        if when is None:
            continue
        records = root / "studies" / name / ".snakemake" / "metadata"
        records.mkdir(parents=True)
        os.utime(records, (when, when))
        os.utime(records.parents[1], (when, when))


def test_a_study_is_found_by_name_by_config_or_as_the_one_that_ran_last(tmp_path):
    project(tmp_path, {"older": 1000.0, "newer": 2000.0, "fresh": None})
    last = where.locate(root=tmp_path)
    assert last.name == "newer" and last.folder == tmp_path / "studies" / "newer"
    assert last.results == tmp_path / "studies" / "newer" / "results"
    named = where.locate(name="older", root=tmp_path)
    assert named.settings.name == "older"
    given = where.locate([tmp_path / "config" / "fresh.yaml"], root=tmp_path)
    assert given.folder == tmp_path / "studies" / "fresh"
    with pytest.raises(where.StudyNotFoundError, match="--configfile"):
        where.locate(name="missing", root=tmp_path)
    elsewhere = where.locate(name="older", directory=tmp_path / "mine", root=tmp_path)
    assert elsewhere.results == tmp_path / "mine" / "results"


def test_status_reads_the_named_studys_folder(tmp_path, monkeypatch, capsys):
    project(tmp_path, {"one": 1000.0, "two": 2000.0})
    (point,) = [p.id for p in grid.expand(where.locate(name="one", root=tmp_path).settings)]
    done = tmp_path / "studies" / "one" / "results" / "runs" / point / "point.json"
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    os.utime(tmp_path / "studies" / "one", (1000.0, 1000.0))  # "two" ran last
    monkeypatch.chdir(tmp_path / "studies")  # the project is found from inside it too
    cli.main(["status", "--study", "one"])
    assert "one: 1 grid points: 1 done" in capsys.readouterr().out
    cli.main(["status"])  # the study that ran last
    assert "two: 1 grid points: 0 done" in capsys.readouterr().out


def test_watch_follows_the_study_until_training_is_complete(tmp_path, capsys):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    log = tmp_path / "logs" / "train" / "job.log"
    log_progress(log, "b", 2)
    readings = []

    def read(now):
        if len(readings) == 2:  # b finishes between the second and third reading
            (tmp_path / "runs" / "b").mkdir(parents=True)
            (tmp_path / "runs" / "b" / "point.json").write_text("{}")
        status = cli.study_status(["b"], 4, tmp_path, now)
        readings.append(status)
        return status

    def describe(status, now):
        return cli.format_status("s", status, now, tmp_path)

    assert watch.watch(read, "s", describe, interval=0, sleep=lambda _: None) == 0
    assert len(readings) == 3 and readings[0].training["b"].epoch == 2
    shown = capsys.readouterr().out
    assert "1/1 points done" in shown and "Training is complete" in shown


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
