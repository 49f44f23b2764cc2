"""Metrics written straight into an MLflow SQLite store's two metric tables, as ``log_batch`` would.

MLflow's SQLite store writes each metric value through SQLAlchemy's ORM: on a 2-core machine
about 0.5 ms of CPU per value, and a training job logs tens of values per seed and epoch (the
per-layer metrics users chart). ``MetricTables`` writes the same rows with SQLite's own
``executemany`` in one transaction per call: every metric into ``metrics``, and each key's most
recent value into ``latest_metrics``, chosen, sanitised (NaN as ``is_nan``, infinities as the
largest float) and de-duplicated as MLflow's ``SqlAlchemyStore._log_metrics`` does it. What
MLflow's API then reads (metric histories, a run's latest metrics, the UI's charts) is the same
(``tests/test_sqlite_metrics.py`` compares both paths through MLflow's client).

It is used only where the store's tables have exactly the columns this module writes
(``open`` checks them; other MLflow versions or schemas keep MLflow's own ``log_batch``), and
never creates a store: a store that has gone away fails the write, as MLflow's would.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from pathlib import Path

# The columns of MLflow's metric tables this writer knows (MLflow 3, alembic dc11669786a5).
COLUMNS = {
    "metrics": ["key", "value", "timestamp", "run_uuid", "step", "is_nan"],
    "latest_metrics": ["key", "value", "timestamp", "step", "is_nan", "run_uuid"],
}
LARGEST = 1.7976931348623157e308

_INSERT = "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) " \
    "VALUES (?, ?, ?, ?, ?, ?)"  # fmt: skip
# A key's latest value is replaced by a more recent one: larger (step, timestamp, value).
_LATEST = (
    "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, run_uuid) DO UPDATE SET "
    "value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, "
    "is_nan = excluded.is_nan WHERE (excluded.step, excluded.timestamp, excluded.value) > "
    "(latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)"
)


def sanitise(value: float) -> tuple[float, int]:
    """(value, is_nan) as MLflow stores them: NaN as 0 with is_nan, infinities as +-largest."""
    if math.isnan(value):
        return 0.0, 1
    if math.isinf(value):
        return (LARGEST if value > 0 else -LARGEST), 0
    return float(value), 0


class MetricTables:
    """Writes metrics into one SQLite store's ``metrics`` and ``latest_metrics`` tables."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def open(cls, path: str | Path | None) -> MetricTables | None:
        """A writer for the store at ``path``; None when there is none, or its tables are not
        the ones this module knows."""
        if path is None or not Path(path).exists():
            return None
        writer = cls(Path(path))
        try:
            with writer._connect() as connection:
                for table, columns in COLUMNS.items():
                    found = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
                    if found != columns:
                        return None
        except sqlite3.Error:
            return None
        return writer

    def _connect(self) -> sqlite3.Connection:
        # mode=rw: never create a store that is not there.
        return sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=30)

    def log(self, run_id: str, metrics: Iterable) -> None:
        """Write ``metrics`` (objects with key, value, timestamp, step) of run ``run_id`` in one
        transaction."""
        rows = []
        seen = set()
        for metric in metrics:
            value, is_nan = sanitise(metric.value)
            row = (metric.key, value, int(metric.timestamp), run_id, int(metric.step), is_nan)
            if row not in seen:
                seen.add(row)
                rows.append(row)
        if not rows:
            return
        latest = [(key, value, ts, step, nan, run) for key, value, ts, run, step, nan in rows]
        connection = self._connect()
        try:
            with connection:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(_INSERT, rows)
                connection.executemany(_LATEST, latest)
        finally:
            connection.close()
