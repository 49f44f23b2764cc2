"""Runs, params, tags and metrics written straight into an MLflow SQLite store's tables.

MLflow's SQLite store goes through SQLAlchemy's ORM: creating a run with a dozen tags costs
about 25 ms, a ``log_batch`` of params or tags 5-6 ms, ``set_terminated`` 5 ms, and each metric
value about 0.5 ms of CPU on a 2-core machine; a training job creates five runs per grid point
and logs tens of values per seed and epoch (the per-layer metrics users chart). ``RunTables``
writes the same rows with SQLite's own statements, each call one transaction:

- ``create_run``: the ``runs`` row, its tags (``mlflow.runName`` added as MLflow adds it) and
  params, as ``SqlAlchemyStore.create_run`` followed by ``log_batch(params=...)`` would, but
  atomically: a run never exists without the tags it is found again by;
- ``write``: metrics into ``metrics`` and each key's most recent value into ``latest_metrics``
  (chosen, sanitised and de-duplicated as ``SqlAlchemyStore._log_metrics`` does it), tags
  (upserted), and optionally the run's final status and end time (``set_terminated``).

Params and the tags of ``write`` pass MLflow's own validation (``mlflow.utils.validation``:
names, length limits, truncation), as in ``log_batch``; a new run's tags are stored as given, as
``create_run`` stores them. What MLflow's API then reads (runs found by tag, their params and
tags, metric histories, latest metrics, the UI's charts) is the same:
``tests/test_sqlite_runs.py`` compares both paths through MLflow's client. It is used only
where the store's tables have exactly the columns this module writes (``open`` checks them;
other MLflow versions or schemas keep MLflow's own calls), and never creates a store: a store
that has gone away fails the write, as MLflow's would.
"""

from __future__ import annotations

import math
import sqlite3
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

# The columns of MLflow's tables this writer knows (MLflow 3, alembic dc11669786a5).
COLUMNS = {
    "metrics": ["key", "value", "timestamp", "run_uuid", "step", "is_nan"],
    "latest_metrics": ["key", "value", "timestamp", "step", "is_nan", "run_uuid"],
    "params": ["key", "value", "run_uuid"],
    "tags": ["key", "value", "run_uuid"],
    "runs": [
        "run_uuid",
        "name",
        "source_type",
        "source_name",
        "entry_point_name",
        "user_id",
        "status",
        "start_time",
        "end_time",
        "source_version",
        "lifecycle_stage",
        "artifact_uri",
        "experiment_id",
        "deleted_time",
    ],
}
# Of ``experiments``, only these are read (its other columns vary between MLflow versions).
EXPERIMENT_COLUMNS = {"experiment_id", "artifact_location", "lifecycle_stage"}
LARGEST = 1.7976931348623157e308
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
ACTIVE = "active"

_INSERT_METRIC = "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) " \
    "VALUES (?, ?, ?, ?, ?, ?)"  # fmt: skip
# A key's latest value is replaced by a more recent one: larger (step, timestamp, value).
_LATEST = (
    "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, run_uuid) DO UPDATE SET "
    "value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, "
    "is_nan = excluded.is_nan WHERE (excluded.step, excluded.timestamp, excluded.value) > "
    "(latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)"
)
_TAG = (
    "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) "
    "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value"
)
_PARAM = "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)"
_RUN = (
    "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, "
    "status, start_time, end_time, source_version, lifecycle_stage, artifact_uri, "
    "experiment_id, deleted_time) VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', "
    "?, ?, ?, NULL)"
)


class InactiveError(ValueError):
    """The run or experiment written to is deleted or absent (MLflow refuses these too)."""


def sanitise(value: float) -> tuple[float, int]:
    """(value, is_nan) as MLflow stores them: NaN as 0 with is_nan, infinities as +-largest."""
    if math.isnan(value):
        return 0.0, 1
    if math.isinf(value):
        return (LARGEST if value > 0 else -LARGEST), 0
    return float(value), 0


def _tags(tags: Mapping[str, str]) -> list[tuple[str, str]]:
    from mlflow.utils.validation import _validate_tag

    checked = [_validate_tag(key, str(value)) for key, value in tags.items()]
    if any(tag.key == RUN_NAME_TAG for tag in checked):
        # MLflow keeps the name in the runs row as well: renaming goes through MLflow.
        raise ValueError(f"{RUN_NAME_TAG} is set when a run is created, not as a tag")
    return [(tag.key, tag.value) for tag in checked]


def _params(params: Mapping[str, str]) -> list[tuple[str, str]]:
    from mlflow.utils.validation import _validate_param

    checked = [_validate_param(key, str(value)) for key, value in params.items()]
    return [(param.key, param.value) for param in checked]


class RunTables:
    """Writes runs, params, tags and metrics into one MLflow SQLite store's tables."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def open(cls, path: str | Path | None) -> RunTables | None:
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
                found = {row[1] for row in connection.execute("PRAGMA table_info(experiments)")}
                if not found >= EXPERIMENT_COLUMNS:
                    return None
        except sqlite3.Error:
            return None
        return writer

    def _connect(self) -> sqlite3.Connection:
        # mode=rw: never create a store that is not there.
        return sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=30)

    def _transaction(self, work) -> None:
        connection = self._connect()
        try:
            with connection:
                connection.execute("BEGIN IMMEDIATE")
                work(connection)
        finally:
            connection.close()

    def _artifact_root(self, connection: sqlite3.Connection, experiment_id: str) -> str:
        row = connection.execute(
            "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?",
            (int(experiment_id),),
        ).fetchone()
        if row is None or row[1] != ACTIVE:
            raise InactiveError(f"experiment {experiment_id} is not active")
        return row[0]

    def create_run(
        self,
        experiment_id: str,
        name: str,
        tags: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        start_time: int | None = None,
    ) -> str:
        """A new run of an active experiment with ``tags`` and ``params``, in one transaction;
        its id. The row is ``SqlAlchemyStore.create_run``'s (status RUNNING, source UNKNOWN, the
        user from ``mlflow.user`` or "unknown", artifacts under the experiment's location)."""
        from mlflow.utils.uri import append_to_uri_path

        run_id = uuid.uuid4().hex
        if RUN_NAME_TAG in tags:
            raise ValueError(f"{RUN_NAME_TAG} is the run's name: pass it as name")
        # As MLflow's create_run: its tags are stored as given (log_batch validates later ones).
        checked_tags = [(key, str(value)) for key, value in tags.items()] + [(RUN_NAME_TAG, name)]
        checked_params = _params(params or {})
        start = int(time.time() * 1000) if start_time is None else int(start_time)
        user = dict(tags).get(USER_TAG, "unknown")

        def work(connection: sqlite3.Connection) -> None:
            root = self._artifact_root(connection, experiment_id)
            artifacts = append_to_uri_path(root, run_id, "artifacts")
            connection.execute(
                _RUN, (run_id, name, user, start, ACTIVE, artifacts, int(experiment_id))
            )
            connection.executemany(_TAG, [(k, v, run_id) for k, v in checked_tags])
            connection.executemany(_PARAM, [(k, v, run_id) for k, v in checked_params])

        self._transaction(work)
        return run_id

    def write(
        self,
        run_id: str,
        metrics: Iterable = (),
        tags: Mapping[str, str] | None = None,
        status: str | None = None,
        end_time: int | None = None,
    ) -> None:
        """Write ``metrics`` (objects with key, value, timestamp, step) and ``tags`` of the
        active run ``run_id`` and, with ``status`` (e.g. "FINISHED"), end it (at ``end_time``,
        now by default): one transaction."""
        rows = []
        seen = set()
        for metric in metrics:
            value, is_nan = sanitise(metric.value)
            row = (metric.key, value, int(metric.timestamp), run_id, int(metric.step), is_nan)
            if row not in seen:
                seen.add(row)
                rows.append(row)
        checked_tags = _tags(tags or {})
        if not rows and not checked_tags and status is None:
            return
        # Only each key's most recent row of this call can become its latest value.
        newest: dict[str, tuple] = {}
        for key, value, ts, _, step, nan in rows:
            if key not in newest or (step, ts, value) > newest[key][:3]:
                newest[key] = (step, ts, value, nan)
        latest = [(key, v, ts, step, nan, run_id) for key, (step, ts, v, nan) in newest.items()]
        end = int(time.time() * 1000) if end_time is None else int(end_time)

        def work(connection: sqlite3.Connection) -> None:
            stage = connection.execute(
                "SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)
            ).fetchone()
            if stage is None or stage[0] != ACTIVE:
                raise InactiveError(f"run {run_id} is not active")
            connection.executemany(_INSERT_METRIC, rows)
            connection.executemany(_LATEST, latest)
            connection.executemany(_TAG, [(k, v, run_id) for k, v in checked_tags])
            if status is not None:
                connection.execute(
                    "UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                    (status, end, run_id),
                )

        self._transaction(work)
