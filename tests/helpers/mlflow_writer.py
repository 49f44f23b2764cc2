"""One training job's MLflow traffic without the training, for tests with many writers.

Kept apart from the test modules so that a spawned writer imports MLflow and nothing heavier.
"""

from __future__ import annotations

from pathlib import Path

from relulab.study import logs
from relulab.train import tracking


def write_point(uri: str, study: str, index: int, epochs: int, start, log_path: str) -> None:
    """Create a point's runs once ``start`` (a barrier) lets go, log every epoch, finish."""
    logs.to_file(log_path)
    tracker = tracking.PointTracker(uri, study, f"point{index}", "fingerprint")
    start.wait()
    tracker.start({"index": index, "nested": {"width": 8}}, [0, 1], {"device": "cpu"})
    epoch_rows, layer_rows = [], []
    for epoch in range(epochs + 1):
        for seed in (0, 1):
            epoch_rows.append(
                {"seed": seed, "epoch": epoch, "val_accuracy": epoch / epochs, "train_loss": 1.0}
            )
            layer_rows.append({"seed": seed, "epoch": epoch, "layer": 1, "dead_fraction": 0.5})
        tracker.log_rows(epoch_rows, layer_rows)
    tracker.finish({0: {"status": "finished"}, 1: {"status": "finished"}}, [Path(log_path)])
