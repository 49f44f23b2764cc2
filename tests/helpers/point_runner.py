"""Runs one grid point's training job in a process of its own, as a training job does.

``python point_runner.py CONFIG_JSON DATA OUT_DIR URI [EPOCH_DELAY_S]``: the config (JSON) must
hold one grid point. EPOCH_DELAY_S slows each epoch down, so that a test can act while the job
trains; while the file named by ``RELULAB_TEST_HOLD`` exists, each epoch also waits for it to
go. A fault with a known remedy ends the process with one line, as the workflow's train script
does; the summary goes to stdout as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from relulab.study import grid
from relulab.train import job, store, tracking


def main(config_json: str, data: str, out_dir: str, uri: str, delay: str = "0") -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    tracking.FLUSH_INTERVAL_S = 0.5  # send often, so that an outage meets a send
    config = json.loads(config_json)
    if float(delay) > 0:
        save = job.SaveEveryEpoch.on_train_epoch_end

        def save_slowly(self, trainer, module):
            save(self, trainer, module)
            time.sleep(float(delay))
            hold = os.environ.get("RELULAB_TEST_HOLD")
            while hold and os.path.exists(hold):
                time.sleep(0.1)

        job.SaveEveryEpoch.on_train_epoch_end = save_slowly
    (point,) = grid.expand(config)
    try:
        summary = job.run_point(point, config, data, out_dir, uri)
    except (store.TrackingUnavailableError, store.StoreLostError) as error:
        print(f"relulab: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
