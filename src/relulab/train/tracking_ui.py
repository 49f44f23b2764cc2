"""What a reader of the MLflow UI sees first, and how the UI is started.

The parent runs carry, per epoch, the mean over seeds and the bounds of its 95 % interval of the
main metrics, so the experiment's shared view (``shared_view_state``) opens a chart view that
compares grid points without expanding a single run; ``ui_url`` is the address that opens it,
``ui_command`` the server that serves it.
"""

from __future__ import annotations

from relulab.train import store
from relulab.train.tracking_names import (
    BOUND,
    LOWER,
    OVERALL,
    PARENT_METRICS,
    UPPER,
    overall_metric,
)

# MLflow's UI keeps its runs-page layout (columns, charts, sections) in the browser; the one
# layout a store can hold is a "shared view": the experiment tag ``mlflow.sharedViewState.<key>``
# holds it as JSON, and the address ``?viewStateShareKey=<key>`` opens it (what the UI's Share
# button writes; ``ui_url`` gives that address). A single run's page has no such view: its layout
# is the browser's own, made from the metrics' names (``tracking_names.OVERALL``).
SHARED_VIEW_KEY = "relulab"
TAG_SHARED_VIEW = f"mlflow.sharedViewState.{SHARED_VIEW_KEY}"


def _line_chart(name: str, keys: list[str], section: str, deleted: bool = False) -> dict:
    """One line chart of the UI's chart view (the fields of MLflow 3's RunsChartsLineCardConfig)
    of the metrics ``keys`` (the first is the chart's own), named ``name``; the UI shows that
    name on a chart of one metric, and titles a chart of several by their keys."""
    return {
        "uuid": f"relulab-{name}",
        "type": "LINE",
        "runsCountToCompare": 10,
        "metricSectionId": section,
        "deleted": deleted,
        "isGenerated": True,
        "displayName": name if len(keys) == 1 else f"{name} (mean, 95 % bounds)",
        "metricKey": keys[0],
        "selectedMetricKeys": keys,
        "lineSmoothness": 0,
        "xAxisScaleType": "linear",
        "scaleType": "linear",
        "range": {},
        "xAxisKey": "step",
        "selectedXAxisMetricKey": "",
        "yAxisKey": "metric",
        "yAxisExpressions": [],
        "ignoreOutliers": False,
        "useGlobalXaxisKey": True,
        "useGlobalLineSmoothing": True,
    }


def shared_view_state() -> dict:
    """The runs page as a reader should first see it: the key metrics as table columns, and a
    chart view that opens on one chart per key metric (its mean with its 95 % bounds, for the
    grid points) before the per-layer sections of the seed runs.

    The charts are in the section of the overall metrics (``all``), where the UI adds the other
    overall metrics' charts; the bounds' own charts are listed as deleted, so that the UI does
    not add them back. Every other metric gets the UI's default chart after these (the section
    order is kept as given).
    """
    section = "relulab-overall"
    charts = []
    for metric in PARENT_METRICS:
        bounds = [f"{metric}{BOUND}{LOWER}", f"{metric}{BOUND}{UPPER}"]
        keys = [overall_metric(name) for name in (metric, *bounds)]
        charts.append(_line_chart(metric, keys, section))
        charts += [
            _line_chart(bound, [key], section, deleted=True)
            for bound, key in zip(bounds, keys[1:], strict=True)
        ]
    columns = [f"metrics.`{overall_metric(metric)}`" for metric in PARENT_METRICS]
    return {
        "selectedColumns": ["attributes.`Dataset`", *columns, "tags.`status`"],
        "compareRunCharts": charts,
        "compareRunSections": [
            {
                "uuid": section,
                "name": OVERALL,
                "display": True,
                "isReordered": True,
                # Two charts a row, not three: a chart of several metrics is titled by their
                # names ("all/val_accuracy vs all/val_accuracy.ci95_low ..."), which a narrow
                # chart cuts to "all/...".
                "columns": 2,
            }
        ],
        "isAccordionReordered": True,
        "hideEmptyCharts": True,
    }


def ui_url(uri: str, experiment: str, port: int = 5000) -> str:
    """The address that opens the study's runs in the MLflow UI's model-training chart view.

    MLflow 3 opens experiments in its GenAI view unless the address says otherwise (the
    ``mlflow.experimentKind`` tag alone does not switch it), and the chart view only when asked.
    """
    root = f"http://127.0.0.1:{port}"
    try:
        store.require_store(uri)
        found = store.retry(lambda: store.client(uri).get_experiment_by_name(experiment))
    except Exception:  # noqa: BLE001 - no store yet: the UI's home page
        return root
    if found is None:
        return root
    address = (
        f"{root}/#/experiments/{found.experiment_id}/runs?workflowType=machine_learning"
        "&compareRunsMode=CHART"
    )
    # A store made before the shared view existed has none: the UI would report the key missing.
    return address + (
        f"&viewStateShareKey={SHARED_VIEW_KEY}" if TAG_SHARED_VIEW in found.tags else ""
    )


# MLflow's server imports starlette.middleware.wsgi, which warns once per server process that it
# is deprecated: four lines of MLflow's own business on every start.
UI_WARNING_FILTERS = ("ignore:starlette.middleware.wsgi is deprecated",)


def ui_environment(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with the UI's warning filters added to ``PYTHONWARNINGS`` (kept by the server
    processes the UI starts, unlike ``-W``); the user's own filters come after and win."""
    own = environ.get("PYTHONWARNINGS", "")
    filters = ",".join([*UI_WARNING_FILTERS, *([own] if own else [])])
    return {**environ, "PYTHONWARNINGS": filters}


def ui_command(uri: str, port: int = 5000) -> list[str]:
    """The ``mlflow ui`` command line serving ``uri`` on 127.0.0.1 only."""
    return ["mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)]
