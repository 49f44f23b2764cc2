"""Starting a real ``mlflow server`` for tests: the README's command, on loopback, in a workdir."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# The README's "Tracking server" command (its port is replaced by the test's).
README_COMMAND = [
    ".venv/bin/mlflow",
    "server",
    "--backend-store-uri",
    "sqlite:///results/mlflow.db",
    "--artifacts-destination",
    "results/mlartifacts",
    "--host",
    "127.0.0.1",
    "--port",
    "5000",
]


def launch(
    workdir: Path, port: int, log: Path, command: list[str] | None = None
) -> subprocess.Popen:
    """``command`` (default ``README_COMMAND``) with this environment's ``mlflow``, on ``port``
    and one worker, in ``workdir`` with its store under ``workdir/results``, output appended to
    ``log``; in a session of its own, so that a test can kill its whole process group."""
    command = [str(Path(sys.executable).parent / "mlflow"), *(command or README_COMMAND)[1:]]
    command[command.index("--port") + 1] = str(port)
    (workdir / "results").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    # The basic-auth app's CSRF protection needs a fixed secret key (README says to export one).
    env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", "relulab-test-secret-key-0123456789abcdef")
    env.setdefault("MLFLOW_AUTH_ADMIN_PASSWORD", "relulab-test-admin-password-0123456789")
    with open(log, "a") as output:
        return subprocess.Popen(
            [*command, "--workers", "1"],
            cwd=workdir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def free_port() -> int:
    """A loopback port no one listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    """Until ``url/health`` answers 200; fails if ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mlflow server exited ({process.returncode})")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("mlflow server did not come up")
