"""Rebuilds an MLflow store from a study's files in a process of its own, and can die mid-way.

``python rebuild_runner.py CONFIG_JSON RESULTS URI [DIE_AT SIGNAL]``: ``recover.rebuild`` of
every grid point under RESULTS; with DIE_AT, the process sends itself SIGNAL (KILL or INT) at
the DIE_AT-th call of MLflow's client that writes (create, log, delete, terminate), before the
call is made: a rebuild stopped between any two of its writes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys

from mlflow.tracking import MlflowClient

from relulab.study import grid
from relulab.train import recover

WRITES = ("create_run", "log_batch", "set_terminated", "log_artifact", "delete_run", "log_inputs")


def die_at(call_number: int, signum: int) -> None:
    calls = [0]
    for name in WRITES:
        original = getattr(MlflowClient, name)

        def counted(self, *args, _original=original, **kwargs):
            calls[0] += 1
            if calls[0] == call_number:
                os.kill(os.getpid(), signum)
            return _original(self, *args, **kwargs)

        setattr(MlflowClient, name, counted)


def main(config_json: str, results: str, uri: str, call: str = "0", sig: str = "KILL") -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    config = json.loads(config_json)
    if int(call) > 0:
        die_at(int(call), getattr(signal, f"SIG{sig}"))
    done = recover.rebuild(uri, config, grid.expand(config), results)
    print(json.dumps(done.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
