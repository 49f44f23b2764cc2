"""Every grid axis may vary at once: tables keep one row per point, and no figure averages
over an axis that varies (it writes the axis into each line's label)."""

import numpy as np
import pandas as pd
import pytest

from relulab.figures import study as figures
from relulab.study import config as cfg
from relulab.study import grid
from relulab.tables import summary as tables

EVERY_AXIS_A_LIST = {
    "activation": ["relu", "tanh"],
    "zero_grad": [0.0, 1.0],
    "lr": [0.1, 0.01],
    "model": {"depth": [1, 2], "batch_norm": [False, True], "init": ["default", "kaiming_normal"]},
    "training": {"optimizer": ["sgd", "adam"], "precision": ["float32", "float64"], "seeds": 2},
}


@pytest.fixture(scope="module")
def study():
    """Epoch and layer rows of two seeds and two epochs for every point of the grid."""
    config = cfg.validate(EVERY_AXIS_A_LIST)
    points = grid.expand(config)
    rng = np.random.default_rng(0)
    epochs, layers = [], []
    for point in points:
        for seed in (0, 1):
            for epoch in (0, 1):
                row = {"point": point.id, **point.params(), "seed": seed, "epoch": epoch}
                values = {
                    "val_accuracy": rng.uniform(),
                    "val_loss": rng.uniform(),
                    "train_loss": rng.uniform(),
                    "dead_fraction": rng.uniform(),
                    "inactive_fraction": rng.uniform(),
                }
                epochs.append({**row, **values, "final_status": "finished"})
                layers.append({**row, "layer": 1, "dead_fraction": values["dead_fraction"]})
    frames = [pd.DataFrame(epochs), pd.DataFrame(layers)]
    for frame in frames:
        pairs = zip(frame.activation, frame.zero_grad, strict=True)
        frame["variant"] = [tables.variant_label(a, z) for a, z in pairs]
    return config, points, *frames


def test_the_grid_and_its_tables_name_every_axis(study):
    config, points, epochs, layers = study
    assert len(points) == 2 * 2 * 2 * 2 * 2 * 2 * 2 + 2 * 2 * 2 * 2 * 2 * 2  # relu x f'(0), tanh
    assert {axis for axis in grid.AXES if len({getattr(p, axis) for p in points}) > 1} == set(
        grid.AXES
    )
    table = tables.summary(epochs, layers)
    assert len(table) == len(points) and table["point"].is_unique
    assert list(table.columns[: len(grid.POINT_COLUMNS)]) == list(grid.POINT_COLUMNS)


def test_figure_labels_keep_every_varying_axis_apart(study):
    _, points, epochs, layers = study
    table = tables.label_settings(tables.summary(epochs, layers))
    # One line (label) per grid point and learning rate: nothing left to average over.
    assert not table.duplicated(["variant", "lr"]).any()
    assert table["variant"].nunique() * 2 == len(points)
    relabelled = tables.label_settings(table)
    assert relabelled["variant"].tolist() == table["variant"].tolist(), "labelling is idempotent"


def test_study_figures_draw_with_every_axis_varying(study, tmp_path):
    _, _, epochs, layers = study
    table = tables.label_settings(tables.summary(epochs, layers))
    figures.dead_heatmap(table, tmp_path / "heatmap.png")
    labelled = tables.label_settings(epochs)
    figures.over_epochs(labelled, "dead_fraction", "dead fraction", tmp_path / "dead.png")
    figures.final_accuracy_vs_lr(tables.final_rows(labelled), tmp_path / "accuracy.png")
    for name in ("heatmap", "dead", "accuracy"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    unlabelled = tables.summary(epochs, layers)
    with pytest.raises(ValueError):  # a heatmap cell would hold several points
        figures.dead_heatmap(unlabelled, tmp_path / "averaged.png")
