"""Compare the MLflow content of two studies, read through MLflow's client.

    python benchmarks/compare_mlflow.py STORE_A STORE_B [--experiment NAME]

STORE is a tracking URI or a study's ``mlflow.db``. Runs are matched by what names them (the
grid point, the run's role and its seed; the study run by its role), and compared by params,
tags and every metric's history (step and value as written; NaN equals NaN). What differs
from run to run by nature is left out: run ids and times, and the tags that name the parent run, the
user, the source or the code and machine that ran (provenance); run names, notes and colours
are compared. Prints the
runs only one side has and the first differences; exits 1 when anything differs, 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

# Tags whose values name the run's parent, who or where ran it, or the code that ran (the
# provenance tags, ``relulab.<library>`` versions among them).
VARYING_TAGS = ("mlflow.source.", "mlflow.user", "relulab.parent", "relulab.git", "relulab.code")
VARYING_TAG_NAMES = {
    "mlflow.parentRunId",
    "relulab.device",
    "relulab.python",
    "relulab.torch",
    "relulab.lightning",
    "relulab.mlflow",
    "relulab.snakemake",
    "relulab.relulab",
}


def uri_of(store: str) -> str:
    return f"sqlite:///{Path(store).resolve()}" if store.endswith(".db") else store


def content(uri: str, experiment: str) -> dict[tuple, dict]:
    """Each run's params, lasting tags and metric histories, keyed by point, role and seed."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"{uri}: no experiment {experiment!r}")
    runs, token = [], None
    while True:
        page = client.search_runs([found.experiment_id], max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    held = {}
    for run in runs:
        tags = run.data.tags
        key = (tags.get("relulab.point"), tags.get("relulab.role"), tags.get("relulab.seed"))
        kept = {
            k: v
            for k, v in tags.items()
            if not k.startswith(VARYING_TAGS) and k not in VARYING_TAG_NAMES
        }
        histories = {
            name: sorted(
                (m.step, repr(m.value)) for m in client.get_metric_history(run.info.run_id, name)
            )
            for name in run.data.metrics
        }
        held[key] = {"status": run.info.status, "params": run.data.params, "tags": kept}
        held[key]["metrics"] = histories
    return held


def differences(a: dict, b: dict, show: int) -> list[str]:
    found = [f"only in A: {key}" for key in sorted(set(a) - set(b), key=str)]
    found += [f"only in B: {key}" for key in sorted(set(b) - set(a), key=str)]
    for key in sorted(set(a) & set(b), key=str):
        for part in ("status", "params", "tags", "metrics"):
            left, right = a[key][part], b[key][part]
            if left == right:
                continue
            if isinstance(left, dict):
                names = sorted(set(left) | set(right))
                changed = [n for n in names if left.get(n) != right.get(n)]
                found.append(f"{key} {part}: {changed[:show]}")
            else:
                found.append(f"{key} {part}: {left!r} != {right!r}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store_a")
    parser.add_argument("store_b")
    parser.add_argument("--experiment", default="relulab-smoke")
    parser.add_argument("--show", type=int, default=5)
    args = parser.parse_args(argv)
    a = content(uri_of(args.store_a), args.experiment)
    b = content(uri_of(args.store_b), args.experiment)
    found = differences(a, b, args.show)
    metrics = sum(len(h) for run in a.values() for h in run["metrics"].values())
    for line in found[: 10 * args.show]:
        print(line)
    print(
        f"{len(a)} and {len(b)} runs; {metrics} metric values in A; "
        f"{'identical' if not found else f'{len(found)} differences'} (run ids, times and "
        "provenance aside)"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
