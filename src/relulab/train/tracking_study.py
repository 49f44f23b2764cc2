"""The study's MLflow experiment and its study run.

``ensure_experiment`` creates the store and the experiment once, before any training job starts;
``experiment_id`` finds it again for a job; ``log_study`` attaches what the whole study concluded
(findings, figures, tables, the resolved config) to the one study run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from relulab.train import store
from relulab.train.tracking_names import (
    TAG_GIT_COMMIT,
    TAG_NOTE,
    TAG_ROLE,
    experiment_description,
    study_description,
)
from relulab.train.tracking_ui import TAG_SHARED_VIEW, shared_view_state

DEFAULT_URI = "sqlite:///results/mlflow.db"
# MLflow 3 opens an experiment without runs of a model in its GenAI view unless told otherwise.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def tracking_uri(configured: str | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the config's ``tracking_uri``, else the default."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or DEFAULT_URI


def ensure_experiment(uri: str, name: str, artifact_root: str | Path | None = None) -> str:
    """Create the store (if new) and the experiment once, before any training job starts.

    The experiment opens in MLflow's model-training view and says what its runs are. Where this
    call creates the store, MLflow's empty "Default" experiment is deleted (it would be the
    first thing the UI shows, and it never holds a relulab run).
    """
    database = store.sqlite_path(uri)
    new_store = database is not None and not database.exists()
    client = store.client(uri)
    experiment = store.retry(lambda: client.get_experiment_by_name(name))
    if experiment is None:
        location = None
        if artifact_root is not None and not uri.startswith(("http://", "https://")):
            location = Path(artifact_root).resolve().as_uri()
        experiment_id = store.retry(
            lambda: client.create_experiment(name, artifact_location=location)
        )
    else:
        experiment_id = experiment.experiment_id
    for key, value in (
        (TAG_EXPERIMENT_KIND, EXPERIMENT_KIND),
        (TAG_NOTE, experiment_description(name)),
        (TAG_SHARED_VIEW, json.dumps(shared_view_state())),
    ):
        store.retry(
            lambda key=key, value=value: client.set_experiment_tag(experiment_id, key, value)
        )
    if new_store:
        _delete_empty_default(client)
    return experiment_id


def _delete_empty_default(client) -> None:
    """Delete MLflow's "Default" experiment (id 0) when it holds no run."""
    default = store.retry(lambda: client.get_experiment("0"))
    if default.lifecycle_stage != "active":
        return
    if not store.retry(lambda: client.search_runs(["0"], max_results=1)):
        store.retry(lambda: client.delete_experiment("0"))


def experiment_id(uri: str, name: str) -> str:
    store.require_store(uri)
    experiment = store.retry(lambda: store.client(uri).get_experiment_by_name(name))
    if experiment is None:
        raise store.StoreLostError(
            f"MLflow experiment {name!r} does not exist at {uri}; run the workflow again "
            "(its rule init_tracking makes it; if the store was replaced, delete "
            "results/mlflow/experiment.json first)"
        )
    return experiment.experiment_id


def log_study(
    uri: str,
    experiment: str,
    artifacts: dict[str, Iterable[Path]],
    config_yaml: str,
    provenance: dict | None = None,
) -> str:
    """Find or create the study run and attach the study's results to it.

    ``artifacts`` maps a folder of the run's artifacts ("" for the top) to the files that go
    there; logging again replaces files of the same name, so a rerun leaves one study run.
    Returns the run id.
    """
    import tempfile

    from mlflow.entities import RunTag

    client = store.client(uri)
    experiment_id_ = experiment_id(uri, experiment)
    query = f"tags.`{TAG_ROLE}` = 'study'"
    found = store.retry(lambda: client.search_runs([experiment_id_], query, max_results=1))
    if found:
        run_id = found[0].info.run_id
    else:
        tags = {TAG_ROLE: "study", TAG_NOTE: study_description(experiment)}
        run = store.retry(lambda: client.create_run(experiment_id_, run_name="study", tags=tags))
        run_id = run.info.run_id
    tags = [RunTag(TAG_NOTE, study_description(experiment))]
    commit = (provenance or {}).get("git_commit", "")
    if len(commit) == 40:
        tags.append(RunTag(TAG_GIT_COMMIT, commit))
    tags += [RunTag(f"relulab.{k}", str(v)) for k, v in (provenance or {}).items()]
    store.retry(lambda: client.log_batch(run_id, tags=tags))
    for folder, paths in artifacts.items():
        for path in paths:
            store.retry(
                lambda path=path, folder=folder: client.log_artifact(
                    run_id, str(path), folder or None
                )
            )
    with tempfile.TemporaryDirectory() as scratch:
        resolved = Path(scratch) / "config.yaml"
        resolved.write_text(config_yaml)
        store.retry(lambda: client.log_artifact(run_id, str(resolved)))
    store.retry(lambda: client.set_terminated(run_id, "FINISHED"))
    return run_id
