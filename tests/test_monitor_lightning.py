"""The monitor from a Lightning Trainer (MLflow, CSV), under DDP, and ``relulab audit``."""

from __future__ import annotations

import lightning as L
import pandas as pd
import pytest
import torch
from helpers import monitored
from helpers.monitored_lightning import Classifier
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger

from relulab import cli
from relulab.monitor import Monitor, ProbeSet
from relulab.monitor.audit import table_text
from relulab.monitor.callback import DeadUnitMonitor

PROBE = 128
HISTORY_METRICS = ("ever_dead", "revived", "permanently_dead", "revived_since_last", "newly_dead")


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    """One SQLite MLflow store for the module's tests, created once."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


def _trainer(tmp_path, logger, callback, **kwargs) -> L.Trainer:
    return L.Trainer(
        logger=logger,
        callbacks=[callback],
        default_root_dir=tmp_path,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def _loader():
    return torch.utils.data.DataLoader(monitored.dataset(), batch_size=32, shuffle=True)


@pytest.mark.slow
def test_callback_logs_to_mlflow_and_audit_reproduces_its_last_check(
    tmp_path, tracking_uri, capsys
):
    from mlflow import MlflowClient

    logger = MLFlowLogger(experiment_name="monitored", tracking_uri=tracking_uri)
    callback = DeadUnitMonitor(every_n_steps=5, network="model", probe_size=PROBE)
    trainer = _trainer(tmp_path, logger, callback, max_steps=15)
    trainer.fit(Classifier(monitored.mlp_factory(), lr=2.0), _loader())
    last = callback.monitor.last
    assert last.step == 15
    client = MlflowClient(tracking_uri)
    history = client.get_metric_history(logger.run_id, "layer2/dead_fraction")
    assert [m.step for m in history] == [0, 5, 10, 15]
    expected = last.metrics()
    for key in ("layer1/dead_fraction", "layer3/pre_activation_grad_rms", "dead_fraction"):
        assert client.get_metric_history(logger.run_id, key)[-1].value == expected[key]
    assert client.get_metric_history(logger.run_id, "monitor/seconds")[-1].value > 0
    artifacts = [a.path for a in client.list_artifacts(logger.run_id, "relulab_monitor")]
    assert len(artifacts) == 4 and artifacts[-1].endswith("units_step00000015.csv")
    units = pd.read_csv(tmp_path / "relulab_monitor" / "units_step00000015.csv")
    assert len(units) == 3 * 16 and units["dead"].sum() == sum(
        int(c.dead.sum()) for c in last.layers
    )

    capsys.readouterr()
    checkpoint = trainer.checkpoint_callback.best_model_path
    status = cli.main(
        [
            "audit",
            "helpers.monitored:mlp_factory",
            "--checkpoint",
            checkpoint,
            "--data",
            "helpers.monitored:dataset",
            "--probe-size",
            str(PROBE),
            "--out",
            str(tmp_path / "audit"),
            "--mlflow-uri",
            tracking_uri,
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert "at step 15" in printed
    assert table_text(last) in printed  # the same numbers, printed the same way
    audited = pd.read_csv(tmp_path / "audit" / "layers.csv", dtype={"name": str})
    callback_layers = last.layer_table()
    shared = [c for c in callback_layers if not c.startswith(HISTORY_METRICS)]
    pd.testing.assert_frame_equal(
        audited[shared], callback_layers[shared], check_exact=True, check_dtype=False
    )
    assert (tmp_path / "audit" / "dead_fraction.png").stat().st_size > 0
    audit_run = client.search_runs([client.get_experiment_by_name("relulab-audit").experiment_id])[
        0
    ]
    for key, value in expected.items():
        if key != "monitor/seconds" and not key.split("/")[-1].startswith(HISTORY_METRICS):
            assert audit_run.data.metrics[key] == value, key


def test_callback_every_n_epochs_writes_through_a_csv_logger(tmp_path):
    logger = CSVLogger(tmp_path, name="csv")
    callback = DeadUnitMonitor(every_n_steps=None, every_n_epochs=1, network="model", probe_size=64)
    _trainer(tmp_path, logger, callback, max_epochs=2).fit(
        Classifier(monitored.mlp_factory()), _loader()
    )
    rows = pd.read_csv(tmp_path / "csv" / "version_0" / "metrics.csv")
    checks = rows.dropna(subset=["layer1/dead_fraction"])
    assert checks["step"].tolist() == [0, 10, 20]  # before training and after each epoch
    assert {"layer3/sparsity", "inactive_fraction", "monitor/seconds"} <= set(rows.columns)


def test_callback_needs_a_frequency():
    with pytest.raises(ValueError, match="every_n_steps or every_n_epochs"):
        DeadUnitMonitor(every_n_steps=None, every_n_epochs=None)


@pytest.mark.slow  # two spawned processes: about 20 s on a loaded 2-core machine
def test_ddp_counts_are_summed_across_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp.pt"
    torch.multiprocessing.spawn(
        monitored.ddp_check, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True
    )
    reduced = torch.load(out)
    single = Monitor(
        monitored.ddp_model(), ProbeSet.drawn(monitored.dataset(), size=101, seed=2)
    ).check()
    assert reduced[0]["dead"].any()
    for found, expected in zip(reduced, map(monitored.per_unit, single.layers), strict=True):
        assert found["values"] == expected["values"] == 101
        for key in ("dead", "inactive", "exact_zeros", "zero_outputs", "nonfinite"):
            assert torch.equal(found[key], expected[key]), key
        assert found["grad_rms"].tolist() == pytest.approx(expected["grad_rms"].tolist(), rel=1e-9)


@pytest.mark.slow  # two spawned Lightning processes
def test_callback_under_lightning_ddp_spawn_on_two_cpu_processes(tmp_path):
    callback = DeadUnitMonitor(every_n_steps=3, network="model", probe_size=101)
    trainer = _trainer(
        tmp_path,
        CSVLogger(tmp_path, name="csv"),
        callback,
        max_steps=6,
        devices=2,
        strategy="ddp_spawn",
    )
    trainer.fit(Classifier(monitored.mlp_factory()), _loader())
    layers = pd.read_csv(tmp_path / "relulab_monitor" / "layers.csv")
    assert sorted(set(layers["step"])) == [0, 3, 6]
    # Zero outputs are counted over the whole probe set (101 examples x 16 units), summed from
    # the two processes' parts of 51 and 50 examples.
    zeros = layers["sparsity"] * 101 * 16
    assert (zeros - zeros.round()).abs().max() < 1e-9
    assert not ((layers["sparsity"] * 51 * 16) % 1 < 1e-9).all()
