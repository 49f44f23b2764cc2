"""The row schema (``relulab.train.rows``): the one definition of epochs.csv and layers.csv that
training, the CSV files, MLflow and the table loaders share."""

import math

from helpers.training import train

from relulab.nn import probes
from relulab.train import rows


def test_a_cause_of_death_has_its_layer_column():
    assert tuple(f"{c}_fraction" for c in probes.CAUSE_COLUMNS) == rows.CAUSE_FRACTIONS


def test_training_writes_the_schemas_rows(digits_split, tmp_path):
    history = train(digits_split, [0, 3], epochs=1).history
    assert {tuple(row) for row in history.epochs} == {rows.EPOCH_COLUMNS}
    assert {tuple(row) for row in history.layers} == {rows.LAYER_COLUMNS}
    rows.write_epochs(history.epochs, tmp_path / "epochs.csv")
    rows.write_layers(history.layers, tmp_path / "layers.csv")
    epochs = rows.read_epochs(tmp_path / "epochs.csv")
    layers = rows.read_layers(tmp_path / "layers.csv")
    assert tuple(epochs.columns) == rows.EPOCH_COLUMNS
    assert tuple(layers.columns) == rows.LAYER_COLUMNS
    assert epochs.params_sha256.tolist() == [row["params_sha256"] for row in history.epochs]
    assert math.isnan(layers.grad_norm.iloc[0])  # epoch 0: no step yet


def test_metrics_are_the_numbers_and_a_hash_of_digits_stays_text(tmp_path):
    assert set(rows.EPOCH_METRICS).isdisjoint({"seed", "epoch", "step", "status", "params_sha256"})
    assert set(rows.LAYER_METRICS).isdisjoint({"seed", "epoch", "layer"})
    values = {c: 0.5 for c in rows.EPOCH_METRICS}
    row = rows.epoch_row(seed=0, epoch=0, step=0, status="ok", params_sha256="0123", **values)
    rows.write_epochs([row], tmp_path / "epochs.csv")
    assert rows.read_epochs(tmp_path / "epochs.csv").params_sha256.tolist() == ["0123"]
    assert list(rows.epoch_row(point="p", **row)) == ["point", *rows.EPOCH_COLUMNS]
