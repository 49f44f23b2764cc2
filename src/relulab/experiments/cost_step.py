"""What an activation costs as users pay it: one whole training step at the study's sizes.

The per-element benchmark (``relulab.experiments.cost``) times the activation alone on large
tensors, where its arithmetic dominates. A user pays for the activation inside a training step:
the forward pass through every layer, the backward pass, and the optimizer's update, at the
study's batch size, width and depth, where matrix products, autograd and Python overhead share
the time. This module times exactly that: an MLP (``depth`` hidden layers of ``width`` units,
the study's input and class count) with each activation as the study builds it, one step
being ``zero_grad``, forward, cross-entropy, backward and ``optimizer.step()`` with the
study's optimizers (``relulab.train.optim.make_optimizer``: fused Adam, SGD, SGD with
momentum), on batches of the study's training data.

The protocol is the per-element benchmark's: repeats interleaved across variants in a shuffled
order, each timing paired with a timing of the reference (PyTorch's own ReLU module) taken just
before it, so that the load of a shared machine cancels out of the ratio; the median ratio has a
distribution-free 95 % interval (``cost.median_interval``), and a second, separate ReLU model
(the null) is timed like any other variant. A variant is "cheaper" or "dearer" only when its
interval lies outside the null's (widened to include 1); otherwise "same".
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from relulab.experiments import machine
from relulab.experiments.cost import NULL, REFERENCE, Variant, median_interval
from relulab.nn import activations
from relulab.nn.models import DTYPES
from relulab.train.optim import make_optimizer

# The same learning rate for every optimizer: a step's cost does not depend on it, and a small
# one keeps every model finite over the thousands of steps timed.
LEARNING_RATE = 1e-3
# The null's own verdict ("null" alone reads back from a CSV as missing).
NULL_VERDICT = "null model"
COLUMNS = [
    "activation",
    "variant",
    "zero_grad",
    "optimizer",
    "device",
    "precision",
    "batch_size",
    "width",
    "depth",
    "in_features",
    "repeats",
    "steps_per_timing",
    "seconds_per_step",
    "microseconds_per_step",
    "ratio_to_relu",
    "ratio_low",
    "ratio_high",
    "verdict",
    *machine.COLUMNS,
]


@dataclass(frozen=True)
class StepSize:
    """The study's sizes: one batch through ``depth`` hidden layers of ``width`` units."""

    batch_size: int
    width: int
    depth: int
    in_features: int
    classes: int


def step_variants(study_activations, relu_zero_grads=(0.0,)) -> list[Variant]:
    """The reference (PyTorch's ReLU), the null (a second one), and each of the study's
    activations as the study trains it: kinked ones with relulab's operator at f'(0) = 0 (ReLU
    also at each of ``relu_zero_grads``), smooth ones as PyTorch's modules."""
    found = [Variant("relu", torch_own=True), Variant("relu", torch_own=True, null=True)]
    for name in study_activations:
        if name == "relu":
            found += [Variant(name, float(z)) for z in (0.0, *relu_zero_grads)]
        elif activations.is_kinked(name):
            found.append(Variant(name, 0.0))
        else:
            found.append(Variant(name))
    return list(dict.fromkeys(found))


def mlp(activation: nn.Module, size: StepSize, seed: int = 0) -> nn.Sequential:
    """A plain MLP with ``activation`` after each hidden layer; ``seed`` fixes the weights,
    so every variant starts from the same ones (the activations' own parameters aside)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    features = size.in_features
    for _ in range(size.depth):
        # Each layer has its own copy: PReLU's slope is per layer, as in the study.
        layers += [nn.Linear(features, size.width), copy.deepcopy(activation)]
        features = size.width
    layers.append(nn.Linear(features, size.classes))
    return nn.Sequential(*layers)


class _Trainer:
    """One model and its optimizer, stepping through a fixed list of batches."""

    def __init__(self, model: nn.Module, optimizer: str, batches: list[tuple]):
        self.model = model.train()
        self.optimizer = make_optimizer(optimizer, model.parameters(), LEARNING_RATE, 0.0)
        self.batches = batches
        self.next = 0

    def step(self) -> None:
        x, y = self.batches[self.next]
        self.next = (self.next + 1) % len(self.batches)
        self.optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(self.model(x), y).backward()
        self.optimizer.step()

    def timed(self, steps: int) -> float:
        """Seconds per step over ``steps`` steps, after one untimed step (data in cache)."""
        self.step()
        device = next(self.model.parameters()).device
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        _sync(device)
        return (time.perf_counter() - start) / steps


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batches_of(x: torch.Tensor, y: torch.Tensor, batch_size: int, count: int = 8) -> list[tuple]:
    """The first ``count`` batches of ``x``/``y`` (cycled when the data holds fewer)."""
    n = len(x)
    starts = [(i * batch_size) % max(n - batch_size + 1, 1) for i in range(count)]
    return [(x[s : s + batch_size], y[s : s + batch_size]) for s in starts]


def time_steps(
    trainers: dict[str, _Trainer],
    reference: str,
    repeats: int,
    steps: int,
    warmup: int = 2,
    seed: int = 0,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per step for each trainer per repeat, and its time over the reference's, timed
    right before it (the pairing of ``cost.time_variants``)."""
    g = torch.Generator().manual_seed(seed)
    keys = list(trainers)
    times: dict[str, list[float]] = {k: [] for k in keys}
    ratios: dict[str, list[float]] = {k: [] for k in keys}
    for repeat in range(warmup + repeats):
        for index in torch.randperm(len(keys), generator=g).tolist():
            before = trainers[reference].timed(steps)
            seconds = trainers[keys[index]].timed(steps)
            if repeat >= warmup:
                times[keys[index]].append(seconds)
                ratios[keys[index]].append(seconds / before)
    return times, ratios


def add_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """``verdict`` per row: "cheaper" or "dearer" than the reference only when the ratio's
    interval lies wholly outside the null's interval widened to include 1 (per optimizer and
    device); "same" otherwise. The reference and the null are labelled as such
    (``NULL_VERDICT``)."""
    table = table.copy()
    verdicts = []
    for row in table.itertuples():
        if row.variant in (REFERENCE, NULL):
            verdicts.append("reference" if row.variant == REFERENCE else NULL_VERDICT)
            continue
        null = table[
            (table["device"] == row.device)
            & (table["optimizer"] == row.optimizer)
            & (table["variant"] == NULL)
        ]
        low = min(1.0, float(null["ratio_low"].iloc[0])) if len(null) else 1.0
        high = max(1.0, float(null["ratio_high"].iloc[0])) if len(null) else 1.0
        if row.ratio_high < low:
            verdicts.append("cheaper")
        elif row.ratio_low > high:
            verdicts.append("dearer")
        else:
            verdicts.append("same")
    table["verdict"] = verdicts
    return table


def benchmark(
    x: torch.Tensor,
    y: torch.Tensor,
    size: StepSize,
    variants: list[Variant],
    optimizers=("adam",),
    repeats: int = 15,
    steps: int = 4,
    device: torch.device | str = "cpu",
    precision: str = "float32",
) -> pd.DataFrame:
    """One row per (optimizer, variant) (``COLUMNS``): median seconds per training step and
    the step's time relative to the reference's, with its interval and verdict.

    ``x``/``y``: training inputs (flattened) and labels, from which a few batches of
    ``size.batch_size`` are cycled through. ``ratio_to_relu`` is the median over repeats of
    the variant's time over the reference's (timed just before it), divided by the same median
    for the reference against itself (which removes what being timed second does alone).
    """
    device = torch.device(device)
    dtype = DTYPES[precision]
    x = x.reshape(len(x), -1).to(device=device, dtype=dtype)
    y = y.to(device=device, dtype=torch.int64)
    batches = batches_of(x, y, size.batch_size)
    where = machine.columns(device)
    rows = []
    for optimizer in optimizers:
        trainers = {
            v.label: _Trainer(mlp(v.build(), size).to(device, dtype), optimizer, batches)
            for v in variants
        }
        times, ratios = time_steps(trainers, REFERENCE, repeats, steps)
        order_bias = float(np.median(ratios[REFERENCE]))
        for variant in variants:
            relative = np.asarray(ratios[variant.label]) / order_bias
            low, high = median_interval(relative)
            median = float(np.median(times[variant.label]))
            rows.append(
                {
                    "activation": variant.activation,
                    "variant": variant.label,
                    "zero_grad": variant.zero_grad,
                    "optimizer": optimizer,
                    "device": device.type,
                    "precision": precision,
                    "batch_size": size.batch_size,
                    "width": size.width,
                    "depth": size.depth,
                    "in_features": size.in_features,
                    "repeats": len(relative),
                    "steps_per_timing": steps,
                    "seconds_per_step": median,
                    "microseconds_per_step": median * 1e6,
                    "ratio_to_relu": float(np.median(relative)),
                    "ratio_low": low,
                    "ratio_high": high,
                    "verdict": "",
                    **where,
                }
            )
    return add_verdicts(pd.DataFrame(rows, columns=COLUMNS))
