"""What one check found, per call site and per unit, and its metrics under the study's names.

Per-layer metrics are named as the study's per-layer metrics in MLflow
(``relulab.train.tracking_names.layer_metric``: ``layer1/dead_fraction``), layers numbered
from 1 in the order the forward pass calls them; model-wide metrics as the columns of the
study's epochs.csv (``dead_fraction`` over all units of all layers), without the ``all/``
section the study's MLflow runs give them. Per-unit values go to a table (a file artifact),
not to thousands of metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from relulab.train.tracking_names import layer_metric

SECONDS_METRIC = "monitor/seconds"


@dataclass
class LayerCheck:
    """One call site's per-unit results (boolean masks, int64 counts, float64 RMS)."""

    layer: int  # 1-based, forward order
    name: str  # module name, with "#k" for the k-th further call of a reused module
    kind: str  # the activation's class
    units: int
    values: int  # (example, position) pairs per unit
    dead: torch.Tensor
    inactive: torch.Tensor
    dead_at_inference: torch.Tensor
    inactive_at_inference: torch.Tensor
    exact_zeros: torch.Tensor
    zero_outputs: torch.Tensor
    nonfinite: torch.Tensor
    grad_rms: torch.Tensor
    grad_sumsq: torch.Tensor
    history: dict[str, torch.Tensor] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """This layer's metrics by their study names (without the ``layerN/`` prefix)."""
        n = self.units * self.values
        out = {
            "dead_fraction": _mean(self.dead),
            "inactive_fraction": _mean(self.inactive),
            "dead_at_inference_fraction": _mean(self.dead_at_inference),
            "inactive_at_inference_fraction": _mean(self.inactive_at_inference),
            "sparsity": int(self.zero_outputs.sum()) / n,
            "pre_activation_grad_rms": math.sqrt(float(self.grad_sumsq.sum()) / n),
            "exact_zeros": float(self.exact_zeros.sum()),
            "nonfinite": float(self.nonfinite.sum()),
        }
        for key, mask in self.history.items():
            out[f"{key}_fraction"] = _mean(mask)
        return out


def _mean(mask: torch.Tensor) -> float:
    return float(mask.double().mean())


@dataclass
class Check:
    """A check of the whole model: its layers and how long it took."""

    step: int
    layers: list[LayerCheck]
    seconds: float
    examples: int

    def metrics(self) -> dict[str, float]:
        """Model-wide and per-layer metrics, named as the study names them, and the check's time."""
        units = sum(layer.units for layer in self.layers)
        out = {
            key: sum(int(getattr(layer, mask).sum()) for layer in self.layers) / units
            for key, mask in (
                ("dead_fraction", "dead"),
                ("inactive_fraction", "inactive"),
                ("dead_at_inference_fraction", "dead_at_inference"),
                ("inactive_at_inference_fraction", "inactive_at_inference"),
            )
        }
        out["exact_zeros"] = float(sum(int(layer.exact_zeros.sum()) for layer in self.layers))
        out["nonfinite"] = float(sum(int(layer.nonfinite.sum()) for layer in self.layers))
        for layer in self.layers:
            for key, value in layer.metrics().items():
                out[layer_metric(layer.layer, key)] = value
        out[SECONDS_METRIC] = self.seconds
        return out

    def layer_table(self):
        """One row per layer: its name, kind, units and metrics (a pandas DataFrame)."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "step": self.step,
                    "layer": c.layer,
                    "name": c.name,
                    "kind": c.kind,
                    "units": c.units,
                    **c.metrics(),
                }
                for c in self.layers
            ]
        )

    def unit_table(self):
        """One row per unit of every layer (a pandas DataFrame): the per-unit vectors."""
        import pandas as pd

        frames = []
        for c in self.layers:
            columns = {
                "step": self.step,
                "layer": c.layer,
                "name": c.name,
                "unit": range(c.units),
                "dead": c.dead.numpy(),
                "inactive": c.inactive.numpy(),
                "dead_at_inference": c.dead_at_inference.numpy(),
                "inactive_at_inference": c.inactive_at_inference.numpy(),
                "exact_zeros": c.exact_zeros.numpy(),
                "sparsity": (c.zero_outputs.double() / c.values).numpy(),
                "nonfinite": c.nonfinite.numpy(),
                "pre_activation_grad_rms": c.grad_rms.numpy(),
                **{key: mask.numpy() for key, mask in c.history.items()},
            }
            frames.append(pd.DataFrame(columns))
        return pd.concat(frames, ignore_index=True)
