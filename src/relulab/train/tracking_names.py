"""What relulab's MLflow runs, their tags and their metrics are called, and the texts (shown
as ``mlflow.note.content``) that describe the experiment and its runs.

One parent run per grid point, one nested child run per (grid point, seed), and one study run;
runs are found again by their tags (``TAG_POINT``, ``TAG_FINGERPRINT``, ``TAG_ROLE``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable

TAG_POINT = "relulab.point"
TAG_SEED = "relulab.seed"
TAG_FINGERPRINT = "relulab.fingerprint"
TAG_ROLE = "relulab.role"
TAG_PARAMS_SHA256 = "relulab.params_sha256"
# On a run ended because its point's settings changed before it finished
# (``tracking.PointTracker._mark_stale``).
TAG_STALE = "relulab.stale"
# A run's tags that list the code versions (``provenance.code_version``) it ran under, and why
# a run was retired.
TAG_CODE_VERSIONS = "relulab.code_versions"
TAG_SUPERSEDED = "relulab.superseded"
# MLflow's own tags: the UI shows these in its columns and run pages.
TAG_NOTE = "mlflow.note.content"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_COLOUR = "mlflow.runColor"
# The metrics a parent run carries per epoch: the mean over seeds under the seeds' own name (so
# one chart holds parents and seeds), and the bounds of its 95 % interval beside it.
PARENT_METRICS = ("val_accuracy", "dead_fraction", "val_loss", "train_loss")
LOWER, UPPER = "ci95_low", "ci95_high"
# MLflow's chart view puts metrics named "<section>/<name>" in a section of their own. A run's
# page lists its sections by name, and the metrics of no section ("Model metrics") after them
# all: MLflow 3.17 decides this in the browser, from the names alone. So the metrics of the whole
# network go in the section ``all`` (``all/val_accuracy``), which comes before the per-layer
# sections of the seed runs (``layer1/sparsity``). The bounds stay beside their mean
# (``all/val_accuracy.ci95_low``), so that the grid points' charts open as rows of mean, upper
# and lower bound.
SECTION = "/"
OVERALL = "all"
BOUND = "."


def overall_metric(name: str) -> str:
    """The MLflow name of the whole network's metric ``name`` (a column of epochs.csv, or a
    seed band such as ``val_accuracy.ci95_low``)."""
    return f"{OVERALL}{SECTION}{name}"


def layer_metric(layer: int, name: str) -> str:
    """The name of hidden layer ``layer``'s (1-based, forward order) metric ``name``."""
    return f"layer{layer}{SECTION}{name}"


def _number(value) -> str:
    return format(float(value), "g")


# A run name's parts, most distinguishing first; each names a value of the point's parameters.
# The optimizer comes right after the variant and is always named: a column cut after two
# parts still tells Adam's ReLU from SGD's.
_NAME_PARTS = (
    ("activation", lambda p: str(p["activation"])),
    ("zero_grad", lambda p: None if p["zero_grad"] is None else f"f'(0)={_number(p['zero_grad'])}"),
    ("optimizer", lambda p: str(p["optimizer"])),
    ("lr", lambda p: f"lr {_number(p['lr'])}"),
    ("depth", lambda p: f"{p['depth']} layers"),
    ("init", lambda p: f"{p['init']} init" if p.get("init") else None),
    ("precision", lambda p: str(p["precision"])),
    ("batch_norm", lambda p: "batch norm" if p["batch_norm"] else "no batch norm"),
)
ALWAYS_NAMED = ("activation", "zero_grad", "optimizer")


def run_name(params: dict, varying: Iterable[str] | None = None) -> str:
    """A parent run's name: activation, f'(0) and optimizer first, then only the axes that vary.

    ``relu f'(0)=0 · adam · lr 0.03`` reads in a narrow column where the point id
    ``relu_zg0_lr0.03_adam_float32_d3_nobn`` is cut before what tells rows apart.
    ``varying=None`` names every axis.
    """
    shown = None if varying is None else {*ALWAYS_NAMED, *varying}
    parts = []
    for axis, word in _NAME_PARTS:
        text = word(params)
        if text is None or (shown is not None and axis not in shown):
            continue
        if axis == "zero_grad":  # "relu f'(0)=0": one variant, one part
            parts[-1] += f" {text}"
        else:
            parts.append(text)
    return " · ".join(parts)


def point_description(name: str, point_id: str, seeds: int) -> str:
    """A parent run's ``mlflow.note.content``."""
    return (
        f"Grid point **{name}** (`{point_id}`), trained with {seeds} seeds. Its metrics "
        f"(`{OVERALL}/*`) are, per epoch, the mean over the seeds that did not diverge, with "
        f"`.{LOWER}` and `.{UPPER}` the bounds of its Student-t 95 % interval. Epoch 0 is the "
        "initialisation. The seed runs below it hold each seed's metrics, per layer too; the "
        "artifacts hold the point's epochs.csv and layers.csv."
    )


def seed_description(name: str, seed: int) -> str:
    """A seed run's ``mlflow.note.content``."""
    return (
        f"Seed {seed} of grid point **{name}**: one network, its per-epoch metrics on the "
        "whole training set (dead_fraction, inactive_fraction, exact_zeros) and validation "
        f"set (val_accuracy, val_loss) under `{OVERALL}/`, and per hidden layer (`layer<N>/*`, "
        "1 = next to the input)."
    )


def study_description(name: str) -> str:
    """The study run's ``mlflow.note.content``."""
    return (
        f"What study **{name}** concluded, in one place: `findings.md` (and its HTML) answers "
        "each question with its verdict; `figures/` holds every figure, `tables/` the summary "
        "tables, `config.yaml` the resolved configuration the study ran with. The grid points "
        "are the other top-level runs of this experiment."
    )


def experiment_description(name: str) -> str:
    """The experiment's description (``mlflow.note.content``), shown above its runs."""
    return (
        f"relulab study **{name}**: is ReLU's kink at 0 a problem, and what does it cost? "
        "Each top-level run is one grid point (activation, f'(0), learning rate, ...) and "
        "carries per epoch the mean over seeds and its 95 % interval "
        f"(`{OVERALL}/<metric>.{LOWER}`, `.{UPPER}`); expand it for its seed runs. The run "
        "`study` holds the findings, figures, summary tables and resolved config. To compare "
        "ReLU with Leaky ReLU, one line per activation: search "
        f"`{comparison_filter('<optimizer>', '<rate>')}` (the ReLU family at f'(0)=0 with one "
        "optimizer and learning rate; the last condition keeps the grid points, not their "
        "seeds), then open Chart view."
    )


def comparison_filter(optimizer: str, lr, zero_grad="0.0") -> str:
    """The runs-search filter that compares activations at one setting, one run each: the grid
    points (not their seed runs) of one optimizer, learning rate and f'(0).

    Smooth activations have no f'(0) (``params.zero_grad = 'None'``), so the default keeps the
    ReLU family. ``lr`` and ``zero_grad`` are written as the runs' params hold them (``'3.0'``).
    Axes a study varies besides these (depth, init, precision) need a condition of their own.
    """
    return (
        f"params.optimizer = '{optimizer}' and params.lr = '{lr}' "
        f"and params.zero_grad = '{zero_grad}' and tags.`{TAG_ROLE}` = 'point'"
    )
