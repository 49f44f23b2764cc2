import logging
import signal
import sys

# Ctrl-C: stop at once and quietly (exit status 130), not with a traceback on the console from
# wherever the job was (imports, MLflow, training); the checkpoint of the last epoch resumes it.
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))

import torch  # noqa: E402 - after the Ctrl-C handler

from relulab.data.prepared import PreparedDataError  # noqa: E402 - after the Ctrl-C handler
from relulab.study import logs, settings  # noqa: E402 - after the Ctrl-C handler
from relulab.train import job, store  # noqa: E402 - after the Ctrl-C handler

logs.to_file(snakemake.log[0])  # noqa: F821
torch.set_num_threads(snakemake.threads)  # noqa: F821
try:
    # Points that share an architecture, f'(0) and optimiser train as one model; a store
    # fault (read-only, locked, another schema, corrupt) ends in one line with its fix.
    with store.faults_in_one_line(snakemake.params.uri):  # noqa: F821
        job.run_points(
            snakemake.params.points,  # noqa: F821
            settings.from_config(snakemake.config),  # noqa: F821
            snakemake.input.data,  # noqa: F821
            snakemake.params.uri,  # noqa: F821
        )
except (
    store.TrackingUnavailableError,
    store.StoreLostError,
    PreparedDataError,
    job.NonFiniteStartError,
) as error:
    # A fault with a known remedy: one line that says it, in the log and on the terminal.
    logging.getLogger("relulab").error("%s", error)
    print(f"relulab: {error}", file=sys.__stderr__)
    sys.exit(1)
