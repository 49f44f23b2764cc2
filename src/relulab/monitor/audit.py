"""``relulab audit``: the monitor's check of a saved model, as a table, CSV files and a figure.

The model comes from a factory (``pkg.module:function``, called without arguments) and a
checkpoint: a plain state dict, or a Lightning ``.ckpt`` whose ``state_dict`` keys carry the
LightningModule's attribute name (``model.layer1.0.conv1.weight``), found and removed. The data
come from an import path (a function returning a Dataset, DataLoader, tensor or tuple of
tensors, or such an object itself) or a relulab dataset name (``mnist1d``: its training split,
standardised as the study trains on it). With the callback's probe size, seed and chunk the
audit draws the same probe set and reproduces the callback's last check; only the metrics
that compare with earlier checks (revived, newly dead) need the run's history and start over.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

import torch
from torch import nn

from relulab.monitor.check import Check
from relulab.monitor.monitor import DEFAULT_CHUNK, Monitor
from relulab.monitor.probe import DEFAULT_SEED, DEFAULT_SIZE, ProbeSet

# The columns of the printed table, in order.
TABLE_COLUMNS = (
    "layer",
    "name",
    "kind",
    "units",
    "dead_fraction",
    "inactive_fraction",
    "dead_at_inference_fraction",
    "sparsity",
    "exact_zeros",
    "nonfinite",
    "pre_activation_grad_rms",
)


def load_object(spec: str):
    """The object an import path ``pkg.module:attribute`` names."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not attribute:
        raise ValueError(f"expected an import path 'pkg.module:name', not {spec!r}")
    target = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def _matching(state: dict, wanted: set[str]) -> dict | None:
    """``state`` with a common key prefix removed so that its keys are ``wanted``; else None."""
    if set(state) == wanted:
        return state
    prefixes = {key.split(".", 1)[0] + "." for key in state if "." in key}
    for prefix in sorted(prefixes):
        stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if set(stripped) == wanted:
            return stripped
    return None


def load_model(factory: str, checkpoint: str | Path | None = None) -> tuple[nn.Module, int]:
    """The factory's model with the checkpoint's weights, and the checkpoint's global step."""
    model = load_object(factory)()
    if not isinstance(model, nn.Module):
        raise TypeError(f"{factory} returned a {type(model).__name__}, not an nn.Module")
    if checkpoint is None:
        return model, 0
    # A Lightning checkpoint holds more than tensors: only load checkpoints you trust.
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else saved
    wanted = set(model.state_dict())
    found = _matching(state, wanted)
    if found is None:
        missing = sorted(wanted - set(state))[:3]
        raise ValueError(
            f"{checkpoint}: its keys do not match {factory}'s model (missing e.g. {missing}), "
            "with or without a common prefix such as 'model.'"
        )
    model.load_state_dict(found)
    return model, int(saved.get("global_step", 0)) if isinstance(saved, dict) else 0


def relulab_dataset(name: str, dtype: torch.dtype = torch.float32):
    """A relulab dataset's training split as a TensorDataset, standardised as training's."""
    from relulab.data import prepared

    with tempfile.TemporaryDirectory() as tmp:
        split = prepared.load(prepared.prepare(name, Path(tmp) / f"{name}.npz"))
    return torch.utils.data.TensorDataset(split.x_train.to(dtype), split.y_train)


def load_data(spec: str):
    """The data an import path names (called if callable), or a relulab dataset by name."""
    from relulab.data import prepared

    if ":" not in spec:
        known = (*prepared.GENERATORS, *prepared.DOWNLOADED)
        if spec not in known:
            raise ValueError(
                f"unknown data {spec!r}: give an import path 'pkg.module:function' or one of "
                f"{', '.join(known)}"
            )
        return relulab_dataset(spec)
    data = load_object(spec)
    return data() if callable(data) and not isinstance(data, nn.Module) else data


def audit(
    model: nn.Module,
    data,
    probe_size: int = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
    chunk: int = DEFAULT_CHUNK,
    step: int = 0,
) -> Check:
    """One check of ``model`` on a probe set drawn from ``data`` as the callback draws it."""
    monitor = Monitor(model, ProbeSet.drawn(data, probe_size, seed), chunk=chunk)
    return monitor.check(step)


def write(check: Check, directory: str | Path) -> list[Path]:
    """``layers.csv``, ``units.csv`` and ``dead_fraction.png`` (and .svg) in ``directory``."""
    from relulab.monitor.figure import layer_figure

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    layers, units = directory / "layers.csv", directory / "units.csv"
    check.layer_table().to_csv(layers, index=False)
    check.unit_table().to_csv(units, index=False)
    figure = layer_figure(check.layer_table(), directory / "dead_fraction.png")
    return [layers, units, figure]


def log_to_mlflow(check: Check, files: list[Path], uri: str, experiment: str, name: str) -> str:
    """An MLflow run with the check's metrics (the callback's names) and files; its run id."""
    from lightning.pytorch.loggers import MLFlowLogger

    logger = MLFlowLogger(experiment_name=experiment, run_name=name, tracking_uri=uri)
    logger.log_metrics(check.metrics(), step=check.step)
    for path in files:
        logger.experiment.log_artifact(logger.run_id, str(path), "relulab_audit")
    logger.finalize("success")
    return logger.run_id


def table_text(check: Check) -> str:
    """The per-layer table as printed: one row per call site of an activation."""
    frame = check.layer_table()[list(TABLE_COLUMNS)]
    return frame.to_string(index=False, float_format=lambda v: f"{v:.6g}")


def run(
    factory: str,
    checkpoint: str | None,
    data: str,
    out: str | Path,
    probe_size: int = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
    chunk: int = DEFAULT_CHUNK,
    mlflow_uri: str | None = None,
    experiment: str = "relulab-audit",
) -> Check:
    """What ``relulab audit`` does: check, print, write, and log when an MLflow URI is given."""
    model, step = load_model(factory, checkpoint)
    check = audit(model, load_data(data), probe_size, seed, chunk, step)
    print(f"relulab audit: {factory} at step {step}, {check.examples} probe examples (seed {seed})")
    print(table_text(check))
    files = write(check, out)
    print(f"wrote {', '.join(str(p) for p in files)}")
    if mlflow_uri:
        name = f"audit {Path(checkpoint).name if checkpoint else factory}"
        run_id = log_to_mlflow(check, files, mlflow_uri, experiment, name)
        print(f"logged MLflow run {run_id} in experiment {experiment!r} at {mlflow_uri}")
    return check
