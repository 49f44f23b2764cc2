"""relulab: rerunnable measurements of what ReLU's kink at zero costs.

The package is laid out by stage of the pipeline:

- ``relulab.study``: the configuration (``config``), the grid of points (``grid``), results paths
- ``relulab.nn``: zero-gradient activations, their compiled operators, MLPs, conv nets, probes
- ``relulab.data``: datasets, generated or read from downloaded files
- ``relulab.train``: the training core, the Lightning wiring, the job, MLflow tracking
- ``relulab.experiments``: the ReLU'(0) bifurcation measurement, the activation cost benchmark
- ``relulab.tables``: statistics and the study's tables
- ``relulab.figures``: the study's figures
- ``relulab.report``: the findings

The public API below is imported on first use, so that ``import relulab`` (and the
configuration check) stays free of torch.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "build_activation": ("relulab.nn.activations", "build"),
    "mlp": ("relulab.nn.models", "mlp"),
    "dead_units": ("relulab.nn.probes", "dead_units"),
    "inactive_units": ("relulab.nn.probes", "inactive_units"),
    "expand_grid": ("relulab.study.grid", "expand"),
    "Point": ("relulab.study.grid", "Point"),
    "validate_config": ("relulab.study.config", "validate"),
    "study_settings": ("relulab.study.settings", "from_config"),
    "run_point": ("relulab.train.job", "run_point"),
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        module, attribute = _PUBLIC[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'relulab' has no attribute {name!r}")
