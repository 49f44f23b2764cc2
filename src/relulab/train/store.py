"""The MLflow store's failures: an unreachable server, a corrupt or a lost SQLite file.

The tracking modules (``tracking``, ``tracking_study``, ``tracking_ui``) reach the store through
``client`` and make every store call through ``retry``, which waits out SQLite's transient locks
and, for a tracking server that does not answer, gives up after ``tracking_timeout_s`` (30 s by
default) with one line that names the server: the training state is checkpointed after every
epoch and a rerun continues it, so stopping loses nothing, whereas MLflow's own retries would
hold the job for about four minutes and end in a long traceback.

``check_sqlite`` finds a corrupt store before the workflow's tracking step uses it. A store that
was deleted while its study's results were kept is rebuilt by ``recover.rebuild`` (the rules
``init_tracking``/``rebuild_store``) under ``store_lock``, so that two processes never create
one store at once; ``needs_rebuild`` is what parsing the workflow asks (it only looks at which
files exist), and ``require_store`` stops a job that finds the store gone instead of letting it
create an empty one. ``explain`` turns the store's faults (read-only, locked, another MLflow's
schema, corrupt) into one line that names the file and the fix.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import sqlite3
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

DEFAULT_OUTAGE_TIMEOUT_S = 30.0
_outage_timeout_s = DEFAULT_OUTAGE_TIMEOUT_S


class TrackingUnavailableError(RuntimeError):
    """The tracking server did not answer within ``tracking_timeout_s``; the message is one line."""


class StoreCorruptError(RuntimeError):
    """The SQLite store cannot be read; the message says what to do."""


class StoreLostError(RuntimeError):
    """The SQLite store is gone while a job needs it; the message says what to do."""


class StoreFaultError(RuntimeError):
    """The store cannot be used as it is (read-only, locked, another schema); one line."""


def set_outage_timeout(seconds: float) -> None:
    """How long a store call waits for a server that does not answer (``tracking_timeout_s``).

    Also bounds each HTTP request and turns MLflow's own retries off (unless the environment
    sets them), so that ``retry`` alone decides how long a job waits.
    """
    global _outage_timeout_s
    _outage_timeout_s = float(seconds)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, min(120, int(seconds)))))


def _is_lock(error: Exception) -> bool:
    return "locked" in str(error) or "busy" in str(error).lower()


def _is_insert_race(error: Exception) -> bool:
    """Two writers that both found no row of a dataset and both inserted it: MLflow's
    ``log_inputs`` looks a dataset up, then inserts it, so the second writer of the same dataset
    at the same moment hits the unique key (SQLite: "UNIQUE constraint failed", PostgreSQL:
    "duplicate key"); a retry finds the row the first writer committed."""
    text = str(error)
    return "datasets." in text and ("UNIQUE constraint failed" in text or "duplicate key" in text)


def _is_outage(error: Exception) -> bool:
    """A request that reached no server (refused, reset, timed out), as MLflow reports it."""
    text = str(error)
    return text.startswith("API request to ") and "failed with" in text


def _server(error: Exception) -> str:
    """The server an MLflow ``API request to <url> failed`` error names, as scheme://host:port."""
    url = str(error).removeprefix("API request to ").split(" ", 1)[0]
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def outage_message(server: str, waited_s: float) -> str:
    return (
        f"tracking server {server} did not answer for {waited_s:.0f} s (tracking_timeout_s); "
        "the training state is checkpointed after every epoch: run the same command again "
        "once the server is back, and the job continues without losing or repeating an epoch"
    )


# Tries of a store call that finds SQLite locked (about a minute in all, SQLite's own waits
# included) before the lock is reported as a fault.
LOCK_ATTEMPTS = 8


def retry(call: Callable[[], T], attempts: int | None = None) -> T:
    """``call()``, retried while SQLite is locked or two writers raced to insert one dataset
    (``attempts`` times), or while the server is away (until ``tracking_timeout_s`` has passed
    since the first failure)."""
    attempts = LOCK_ATTEMPTS if attempts is None else attempts
    first_failure = None
    attempt = 0
    while True:
        try:
            return call()
        except Exception as error:  # noqa: BLE001 - MLflow wraps SQLAlchemy errors variously
            if _is_outage(error):
                now = time.monotonic()
                first_failure = first_failure if first_failure is not None else now
                waited = now - first_failure
                if waited >= _outage_timeout_s:
                    raise TrackingUnavailableError(outage_message(_server(error), waited)) from None
                time.sleep(min(2.0 ** min(attempt, 3), _outage_timeout_s - waited))
            elif (_is_lock(error) or _is_insert_race(error)) and attempt < attempts - 1:
                # Jitter, so that writers that collided do not collide again in step.
                time.sleep(0.2 * 2**attempt * random.uniform(0.5, 1.5))
            else:
                raise
            attempt += 1


def client(uri: str):
    """MLflow's client of the store at ``uri`` (MLflow is imported on first use)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def sqlite_path(uri: str) -> Path | None:
    """The file of an ``sqlite:///`` store (relative to the working directory), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///"))


def check_sqlite(uri: str) -> None:
    """Raise ``StoreCorruptError`` if the SQLite store exists but fails SQLite's own check."""
    path = sqlite_path(uri)
    if path is None or not path.exists():
        return
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            result = connection.execute("PRAGMA quick_check").fetchone()[0]
        connection.close()
    except sqlite3.DatabaseError as error:
        result = str(error)
    if result != "ok":
        raise StoreCorruptError(_corrupt_message(path, result))


def lost(uri: str, marker: str | Path) -> bool:
    """True when an SQLite store was made for this study (``marker`` exists) but is gone."""
    path = sqlite_path(uri)
    return path is not None and not path.exists() and Path(marker).exists()


def require_store(uri: str) -> None:
    """Raise ``StoreLostError`` if an SQLite store a job relies on does not exist.

    Without this a job would create an empty store (racing with other jobs on its schema)
    and then not find its experiment.
    """
    path = sqlite_path(uri)
    if path is not None and not path.exists():
        raise StoreLostError(
            f"the MLflow store {path} does not exist (deleted while the study ran?). Run the "
            "workflow again: its step rebuild_store makes a new store and sends every "
            "finished grid point's runs to it again from results/runs/"
        )


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Held by one process at a time per SQLite store (a lock file beside it); a no-op for
    servers, which serialise their own writes."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pending_marker(results: str | Path = "results") -> Path:
    """The file that says a rebuild of the store from ``results/runs`` is under way."""
    return Path(results) / "mlflow" / "rebuild.pending"


def needs_rebuild(uri: str, marker: str | Path, results: str | Path = "results") -> bool:
    """Whether the study's store must be rebuilt before any job: an SQLite store that was made
    for this study (``marker`` exists) is gone, or a rebuild was interrupted. Only asks which
    files exist: parsing the workflow calls it."""
    return lost(uri, marker) or pending_marker(results).exists()


def _corrupt_message(path: Path, result: str) -> str:
    return (
        f"the MLflow store {path} is corrupt ({result}). Move it aside "
        f"(mv {path} {path}.corrupt) and run the workflow again: it makes a new store and "
        "sends every finished grid point's runs to it again from results/runs/; "
        "unfinished points train as before"
    )


def explain(error: BaseException, uri: str) -> StoreFaultError | StoreCorruptError | None:
    """The store fault behind ``error``, as one line naming the file and the fix; None when
    ``error`` is not one of the store's known faults."""
    if isinstance(error, (StoreFaultError, StoreCorruptError, StoreLostError)):
        return error
    text = " ".join(str(error).split())
    path = sqlite_path(uri) or uri
    if "readonly database" in text or "read-only" in text.lower():
        return StoreFaultError(
            f"the MLflow store {path} is read-only (attempt to write a readonly database): "
            f"make it and its folder writable (chmod u+w {path} {Path(str(path)).parent}) and "
            "run the workflow again; the trained epochs are kept in the job's checkpoint"
        )
    if "database is locked" in text:
        return StoreFaultError(
            f"the MLflow store {path} stayed locked by another process (database is locked): "
            f"find it with `fuser {path}` (an `mlflow ui` or a script holding a transaction "
            "open), stop it, and run the workflow again"
        )
    if "out-of-date database schema" in text or "Can't locate revision" in text:
        found = text.split("found version ", 1)[-1].split(",", 1)[0] if "found" in text else "?"
        return StoreFaultError(
            f"the MLflow store {path} has schema revision {found}, which is not this MLflow's: "
            "if an older MLflow made it, back it up and run `mlflow db upgrade "
            f"{uri}`; if a newer one did, run the study with that MLflow, or move the store "
            f"aside (mv {path} {path}.other) and the workflow rebuilds it from results/runs/"
        )
    if "malformed" in text or "not a database" in text:
        return StoreCorruptError(_corrupt_message(Path(str(path)), text.split(") ", 1)[-1]))
    return None


@contextmanager
def faults_in_one_line(uri: str) -> Iterator[None]:
    """Inside it, a known store fault ends the process (status 1) with ``explain``'s line, in the
    log and on the terminal, instead of a traceback; other errors pass."""
    try:
        yield
    except Exception as error:
        fault = explain(error, uri)
        if fault is None:
            raise
        logging.getLogger("relulab").error("%s", fault)
        print(f"relulab: {fault}", file=sys.__stderr__)
        raise SystemExit(1) from None
