"""Born dead: ReLU units, and whole networks, that are dead before any training.

Lu, Shin, Su & Karniadakis (2019), *Dying ReLU and initialization: theory and numerical
examples*, show that a deep ReLU network of fixed width is "born dead" (some hidden layer is dead
on every input, so the network is a constant function) with probability tending to 1 as its
depth grows, faster for narrow networks. Here that is measured on the study's own training set:
for each initialisation scheme, width and depth, untrained MLPs (seeds 0..K-1, ReLU with
ReLU'(0)=0, float32), and per network the fraction of hidden units dead on every training
example (SCIENCE.md's definition, via ``relulab.nn.probes``) and whether some layer is dead
entirely. No training, so the whole grid takes seconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pandas as pd
import torch

from relulab.experiments.bifurcation import wilson_interval
from relulab.nn import probes
from relulab.nn.models import seeded_mlp
from relulab.tables.summary import mean_ci95

INIT_LABELS = {
    "default": "PyTorch default",
    "kaiming_normal": "Kaiming normal",
    "kaiming_uniform": "Kaiming uniform",
    "xavier_normal": "Xavier normal",
    "xavier_uniform": "Xavier uniform",
}


def network_rows(
    x: torch.Tensor,
    classes: int,
    inits: Iterable[str],
    widths: Iterable[int],
    depths: Iterable[int],
    networks: int,
) -> pd.DataFrame:
    """One row per untrained network: its dead fraction and whether a whole layer is dead."""
    x = x.to(torch.float32)
    rows = []
    for init, width, depth in itertools.product(inits, widths, depths):
        for seed in range(networks):
            model = seeded_mlp(
                seed,
                in_features=x.shape[1],
                width=int(width),
                depth=int(depth),
                classes=classes,
                activation="relu",
                zero_grad=0.0,
                init=init,
            )
            dead = probes.dead_units(model, x)
            units = sum(mask.numel() for mask in dead)
            rows.append(
                {
                    "init": init,
                    "width": int(width),
                    "depth": int(depth),
                    "seed": seed,
                    "dead_fraction": sum(int(mask.sum()) for mask in dead) / units,
                    "network_dead": any(bool(mask.all()) for mask in dead),
                }
            )
    return pd.DataFrame(rows)


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (init, width, depth): mean dead fraction (95 % half-width over networks) and
    the fraction of networks born dead with its Wilson interval."""
    result = []
    for (init, width, depth), group in rows.groupby(["init", "width", "depth"], sort=True):
        mean, half = mean_ci95(group["dead_fraction"])
        dead = int(group["network_dead"].sum())
        low, high = wilson_interval(dead, len(group))
        result.append(
            {
                "init": init,
                "width": int(width),
                "depth": int(depth),
                "networks": len(group),
                "dead_fraction_mean": mean,
                "dead_fraction_ci95": half,
                "networks_dead": dead,
                "network_dead_fraction": dead / len(group),
                "network_dead_ci_low": low,
                "network_dead_ci_high": high,
            }
        )
    return pd.DataFrame(result)
