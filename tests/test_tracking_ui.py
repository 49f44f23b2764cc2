"""What a reader of the MLflow UI relies on, checked through MLflow's API.

Parent runs carry the seed bands (mean and 95 % bounds per epoch), every run says what it is
(``mlflow.note.content``), carries the commit under MLflow's own tag and the dataset as an input
with its digest; the experiment opens in the model-training view; a new store has no empty
"Default" experiment; the study run holds the study's results.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from relulab.train import tracking, tracking_names, tracking_study, tracking_ui

STUDY = "relulab-ui"
COMMIT = "a" * 40
PARAMS = {
    "activation": "relu",
    "zero_grad": 0.0,
    "lr": 0.03,
    "precision": "float32",
    "depth": 3,
    "batch_norm": False,
    "optimizer": "adam",
}


def epoch_rows(values: dict[int, list[float]]) -> list[dict]:
    """Rows of seeds 0, 1, 2 whose metrics all equal the given value of (epoch, seed)."""
    rows = []
    for epoch, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            metrics = dict.fromkeys(tracking_names.PARENT_METRICS, value)
            rows.append({"seed": seed, "epoch": epoch, "step": epoch, **metrics, "status": "ok"})
    return rows


def test_seed_bands_are_mean_and_t_interval_of_finite_values():
    bands = tracking.seed_bands(epoch_rows({0: [0.4, 0.5, 0.6], 1: [0.5, math.nan, math.inf]}))
    half = 4.3027 * 0.1 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert bands[0]["val_accuracy"] == pytest.approx(0.5)
    assert bands[0]["val_accuracy.ci95_low"] == pytest.approx(0.5 - half, rel=1e-3)
    assert bands[0]["val_accuracy.ci95_high"] == pytest.approx(0.5 + half, rel=1e-3)
    # One finite value: a mean, no bounds.
    assert bands[1]["dead_fraction"] == 0.5
    assert "dead_fraction.ci95_low" not in bands[1]


def test_seed_bands_stay_within_what_the_metric_can_take():
    # Means near 0 and 1 with a wide spread: a t interval would cross 0 and 1.
    bands = tracking.seed_bands(epoch_rows({0: [0.0, 0.02, 0.9], 1: [1.0, 0.98, 0.1]}))
    for epoch in (0, 1):
        for metric in ("val_accuracy", "dead_fraction"):
            low, high = (bands[epoch][f"{metric}.ci95_{b}"] for b in ("low", "high"))
            assert 0.0 <= low < bands[epoch][metric] < high <= 1.0
        for metric in ("val_loss", "train_loss"):
            assert bands[epoch][f"{metric}.ci95_low"] >= 0.0
    assert bands[0]["val_loss.ci95_low"] == 0.0 and bands[1]["dead_fraction.ci95_high"] == 1.0
    assert bands[0]["val_loss.ci95_high"] > 1.0  # a loss has no upper bound
    # A metric without a known domain keeps its interval.
    assert tracking.within_domain("exact_zeros_delta", -2.0, 3.0) == (-2.0, 3.0)


def test_run_names_put_the_distinguishing_part_first():
    name = tracking_names.run_name(PARAMS, {"activation", "zero_grad", "lr"})
    assert name == "relu f'(0)=0 · adam · lr 0.03"
    deep = {**PARAMS, "activation": "tanh", "zero_grad": None, "depth": 10}
    assert tracking_names.run_name(deep, {"activation", "lr", "depth"}).startswith(
        "tanh · adam · lr 0.03 · 10"
    )
    assert "float32" in tracking_names.run_name(PARAMS)
    kaiming = {**PARAMS, "init": "kaiming_normal"}
    assert tracking_names.run_name(kaiming, {"init"}) == "relu f'(0)=0 · adam · kaiming_normal init"


def test_the_comparison_filter_finds_one_grid_point_per_activation(store):
    """The README's recipe on a smoke-like grid with two optimizers and two f'(0) values: one
    run per activation of the ReLU family, none of their seed runs, none of the other
    optimizer's points."""
    uri, data = store
    activations = ("relu", "leaky_relu", "elu")
    for optimizer in ("sgd", "momentum"):
        for activation in activations:
            for zero_grad in (0.0, 1.0) if activation != "elu" else (None,):
                params = {**PARAMS, "activation": activation, "zero_grad": zero_grad}
                params.update(optimizer=optimizer, lr=0.5)
                point = f"{activation}_{zero_grad}_{optimizer}"
                tracker = tracking.PointTracker(uri, STUDY, point, "fp")
                tracker.start(params, [0, 1], name=tracking_names.run_name(params, {"optimizer"}))
                tracker.finish({seed: {"status": "ok"} for seed in (0, 1)})
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(STUDY).experiment_id
    found = client.search_runs([experiment], tracking_names.comparison_filter("sgd", "0.5"))
    assert sorted(run.data.params["activation"] for run in found) == ["leaky_relu", "relu"]
    assert {run.info.run_name for run in found} == {
        "relu f'(0)=0 · sgd",
        "leaky_relu f'(0)=0 · sgd",
    }
    smooth = client.search_runs(
        [experiment], tracking_names.comparison_filter("sgd", "0.5", "None")
    )
    assert [run.data.params["activation"] for run in smooth] == ["elu"]


def test_the_ui_is_started_without_mlflow_s_deprecation_warnings():
    env = tracking_ui.ui_environment({"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert env["PYTHONWARNINGS"].startswith("ignore:starlette.middleware.wsgi is deprecated")
    # A user's own filters come last, so that they win.
    own = tracking_ui.ui_environment({"PYTHONWARNINGS": "error"})["PYTHONWARNINGS"]
    assert own.endswith(",error")


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking_study.ensure_experiment(uri, STUDY, tmp_path / "artifacts")
    data = tmp_path / "mnist1d.npz"
    np.savez(data, x_train=np.zeros((4, 2)), y_train=np.zeros(4))
    return uri, data


def trained_point(uri, data) -> tracking.PointTracker:
    tracker = tracking.PointTracker(uri, STUDY, "relu_zg0_lr0.03", "fp")
    tracker.start(
        {"activation": "relu", "lr": 0.03},
        [0, 1, 2],
        {"git_commit": COMMIT, "torch": "2"},
        name="relu f'(0)=0 · lr 0.03",
        dataset=tracking.dataset_entity("mnist1d", data, {"train": 4}),
    )
    rows = epoch_rows({0: [0.1, 0.2, 0.3], 1: [0.4, 0.5, 0.6]})
    tracker.log_rows(rows, [], force=True)
    tracker.finish({seed: {"status": "ok"} for seed in range(3)})
    return tracker


def test_experiment_opens_in_training_view_and_default_is_gone(store):
    uri, _ = store
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(STUDY)
    assert experiment.tags[tracking_study.TAG_EXPERIMENT_KIND] == "custom_model_development"
    assert "grid point" in experiment.tags[tracking_names.TAG_NOTE]
    assert [e.name for e in client.search_experiments()] == [STUDY]


def test_default_experiment_is_kept_in_a_store_the_study_did_not_create(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).search_experiments()  # the user's store, made before the study
    tracking_study.ensure_experiment(uri, STUDY, tmp_path / "artifacts")
    assert {e.name for e in MlflowClient(uri).search_experiments()} == {"Default", STUDY}


def test_parent_runs_carry_seed_bands_tags_descriptions_and_dataset(store):
    uri, data = store
    tracker = trained_point(uri, data)
    client = MlflowClient(uri)
    parent = client.get_run(tracker.parent_id)
    history = client.get_metric_history(tracker.parent_id, "all/val_accuracy")
    assert [(m.step, round(m.value, 9)) for m in sorted(history, key=lambda m: m.step)] == [
        (0, 0.2),
        (1, 0.5),
    ]
    low = client.get_metric_history(tracker.parent_id, "all/val_accuracy.ci95_low")
    assert [m.value < 0.5 for m in low if m.step == 1] == [True]
    assert parent.info.run_name == "relu f'(0)=0 · lr 0.03"
    assert parent.data.tags[tracking_names.TAG_GIT_COMMIT] == COMMIT
    assert parent.data.tags["relulab.git_commit"] == COMMIT
    assert "3 seeds" in parent.data.tags[tracking_names.TAG_NOTE]
    digest = hashlib.sha256(data.read_bytes()).hexdigest()[:16]
    for run_id in [tracker.parent_id, *tracker.seed_runs.values()]:
        run = client.get_run(run_id)
        (used,) = run.inputs.dataset_inputs
        assert (used.dataset.name, used.dataset.digest) == ("mnist1d", digest)
        assert tracking_names.TAG_NOTE in run.data.tags
    seed_run = client.get_run(tracker.seed_runs[2])
    assert seed_run.info.run_name == "seed 2 · relu f'(0)=0 · lr 0.03"
    assert seed_run.data.tags[tracking_names.TAG_GIT_COMMIT] == COMMIT
    assert seed_run.data.tags[tracking_names.TAG_NOTE].startswith("Seed 2 of grid point")


def test_uncommitted_code_gets_no_mlflow_commit_tag(store):
    uri, _ = store
    tracker = tracking.PointTracker(uri, STUDY, "p", "fp")
    tracker.start({"lr": 0.1}, [0], {"git_commit": "uncommitted"})
    tags = MlflowClient(uri).get_run(tracker.parent_id).data.tags
    assert tracking_names.TAG_GIT_COMMIT not in tags
    assert tags["relulab.git_commit"] == "uncommitted"


def test_study_run_holds_findings_figures_tables_and_config_once(store, tmp_path):
    uri, _ = store
    findings = tmp_path / "findings.md"
    findings.write_text("# Findings\n")
    figure = tmp_path / "convergence.png"
    figure.write_bytes(b"png")
    artifacts = {"": [findings], "figures": [figure]}
    first = tracking_study.log_study(uri, STUDY, artifacts, "study: x\n", {"git_commit": COMMIT})
    again = tracking_study.log_study(uri, STUDY, artifacts, "study: x\n", {"git_commit": COMMIT})
    assert first == again
    client = MlflowClient(uri)
    names = {a.path for a in client.list_artifacts(first)}
    assert names == {"findings.md", "figures", "config.yaml"}
    run = client.get_run(first)
    assert run.info.run_name == "study" and run.data.tags[tracking_names.TAG_GIT_COMMIT] == COMMIT


def test_runs_take_their_activations_colour_from_the_figures(store):
    from relulab import colours

    uri, data = store
    tracker = trained_point(uri, data)
    client = MlflowClient(uri)
    for run_id in [tracker.parent_id, *tracker.seed_runs.values()]:
        tags = client.get_run(run_id).data.tags
        assert tags[tracking_names.TAG_RUN_COLOUR] == colours.COLOURS["relu"]


def test_ui_address_opens_the_runs_in_the_model_training_chart_view(store):
    uri, _ = store
    experiment = MlflowClient(uri).get_experiment_by_name(STUDY).experiment_id
    address = tracking_ui.ui_url(uri, STUDY, 5104)
    assert address.startswith(f"http://127.0.0.1:5104/#/experiments/{experiment}/runs?")
    assert "workflowType=machine_learning" in address and "compareRunsMode=CHART" in address
    assert f"viewStateShareKey={tracking_ui.SHARED_VIEW_KEY}" in address
    assert tracking_ui.ui_url(uri, "no-such-study", 5104) == "http://127.0.0.1:5104"
    # A store made before the shared view: the address does not ask for it.
    MlflowClient(uri).delete_experiment_tag(experiment, tracking_ui.TAG_SHARED_VIEW)
    assert "viewStateShareKey" not in tracking_ui.ui_url(uri, STUDY, 5104)


def test_the_shared_view_groups_each_metric_with_its_bounds_and_shows_them_as_columns(store):
    uri, _ = store
    tags = MlflowClient(uri).get_experiment_by_name(STUDY).tags
    state = json.loads(tags[f"mlflow.sharedViewState.{tracking_ui.SHARED_VIEW_KEY}"])
    shown = [chart for chart in state["compareRunCharts"] if not chart["deleted"]]
    keys = [f"all/{metric}" for metric in tracking_names.PARENT_METRICS]
    assert [chart["metricKey"] for chart in shown] == keys
    for chart in shown:
        key = chart["metricKey"]
        assert chart["selectedMetricKeys"] == [key, f"{key}.ci95_low", f"{key}.ci95_high"]
    assert shown[0]["displayName"] == "val_accuracy (mean, 95 % bounds)"
    # The bounds' own charts are there, deleted, so that the UI does not add them back.
    hidden = {chart["metricKey"] for chart in state["compareRunCharts"] if chart["deleted"]}
    assert hidden == {f"{key}.ci95_{b}" for key in keys for b in ("low", "high")}
    # The section is the overall metrics' own ("all/..."), where the UI adds their other charts.
    (section,) = state["compareRunSections"]
    assert section["name"] == "all" and state["isAccordionReordered"]
    assert section["columns"] == 2  # wide enough for titles that name three metrics
    assert "metrics.`all/val_accuracy`" in state["selectedColumns"]


def test_a_seed_runs_page_opens_on_its_overall_metrics(store):
    """MLflow's run page makes a section of each "<section>/" prefix and lists them by name
    (plain and locale order), then the metrics of no section: every metric of a seed run and
    of its grid point is in a section, and the overall one, ``all``, comes first."""
    uri, _ = store
    tracker = tracking.PointTracker(uri, STUDY, "relu_deep", "fp")
    tracker.start(PARAMS, [0, 1])
    rows = epoch_rows({0: [0.1, 0.2], 1: [0.4, 0.5]})
    layers = [
        {"seed": row["seed"], "epoch": row["epoch"], "layer": layer, "sparsity": 0.5}
        for row in rows
        for layer in range(1, 12)
    ]
    tracker.log_rows(rows, layers, force=True)
    tracker.finish({seed: {"status": "ok"} for seed in range(2)})
    client = MlflowClient(uri)
    for run_id in (tracker.seed_runs[0], tracker.parent_id):
        metrics = client.get_run(run_id).data.metrics
        assert metrics and all("/" in key for key in metrics)
        sections = {key.rsplit("/", 1)[0] for key in metrics}
        for order in (sorted(sections), sorted(sections, key=str.casefold)):
            assert order[0] == tracking_names.OVERALL, order
