"""The bifurcation measurement (Bertoin et al., NeurIPS 2021): does ReLU'(0) change a gradient?

For K untrained initialisations of an MLP, one pass over the training set in a fixed order
(the stored order, the same for every initialisation and both values), batch by batch: the
gradient of every parameter is computed twice on the same weights and the same batch, once with
``zero_grad=0`` and once with ``zero_grad=1`` (in the given precision), and the two are compared
bitwise. An initialisation *bifurcates* when some batch gives a gradient that differs in at least
one bit. In exact arithmetic a pre-activation is 0 with probability 0 and no initialisation
bifurcates; in floating point some do, more in lower precision and in wider, deeper networks.

The K initialisations of one architecture are trained as one ``SeedStack`` (``inits_at_once``
at a time); initialisation ``i`` is drawn by ``seeded_mlp(i)``, so the same K networks are
measured in every precision. The weights are never updated.

Exposure decides the fraction. Exact zeros arrive at a roughly constant rate per pre-activation
computed, so an initialisation that computes N pre-activations meets one with probability
about ``1 - exp(-rate * N)``. The table therefore reports, per cell, the exposure
(``pre_activations_per_init``), the rate with an exact Poisson interval, and the fraction the
rate predicts; ``predicted_fraction`` carries it to any other exposure, such as the paper's.

Only a batch that holds an exact zero can give the two values of f'(0) different gradients
(elsewhere f'(0) is never read), so by default a batch is first passed forward alone, and both
backward passes are computed only when some pre-activation of the batch is exactly 0. In float32
and float64 that is a small fraction of batches, which makes MNIST-sized exposure affordable on
a CPU; ``skip_batches_without_zeros=False`` computes both passes on every batch.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from relulab.experiments import machine
from relulab.nn.models import DTYPES, SeedStack
from relulab.tables.stats import garwood_interval
from relulab.tables.stats import wilson_interval as wilson_interval  # importable from here too
from relulab.train.losses import per_seed_cross_entropy
from relulab.train.stacked import build_stack
from relulab.train.zeros import counting_exact_zeros

PRECISIONS = ("float64", "float32", "bfloat16", "float16")
# Activations whose two passes see exactly the same forward computation (RReLU draws noise).
ACTIVATIONS = ("relu", "leaky_relu", "prelu")
INPUTS = ("standardised", "raw")
# What is compared bitwise: every parameter's gradient, or only the first layer's weight
# gradient (what Bertoin et al.'s code compares, with torch.equal).
COMPARE = ("all", "first_layer")
INIT_COLUMNS = [
    "dataset",
    "inputs",
    "compare",
    "device",
    "activation",
    "precision",
    "width",
    "depth",
    "batch_size",
    "zero_grad",
    "init",
    "examples",
    "batches",
    "pre_activations",
    "differ",
    "differing_batches",
    "first_differing_batch",
    "exact_zeros",
    "live_exact_zeros",
    "max_grad_diff_norm",
    "batches_with_both_passes",
    # Where the bits were computed (``relulab.experiments.machine``), last so that the
    # columns before them read as they always have.
    *machine.COLUMNS,
]
_PER_INIT = [
    "differ",
    "differing_batches",
    "first_differing_batch",
    "exact_zeros",
    "live_exact_zeros",
    "max_grad_diff_norm",
]
# One cell of the bifurcation table: everything that can change the fraction.
CELL = ["dataset", "inputs", "compare", "device", "precision", "width", "depth", "batch_size"]


@dataclass(frozen=True)
class Published:
    """One published bifurcation fraction, at its own exposure."""

    source: str
    dataset: str
    device: str
    precision: str
    width: int
    depth: int
    examples: int
    fraction_differ: float

    @property
    def pre_activations_per_init(self) -> int:
        return self.examples * self.width * self.depth

    @property
    def label(self) -> str:
        return f"{self.source} ({self.dataset}, {self.device})"


# Bertoin et al. (NeurIPS 2021), 3x256 ReLU MLP on MNIST (60,000 training images), batch 256,
# on a GPU: fraction of initialisations with some bitwise different mini-batch gradient (no
# bfloat16 in the paper; its float64 "0 %" rests on 10 initialisations).
PAPER_SOURCE = "Bertoin et al. 2021"
PAPER_POINTS = tuple(
    Published(PAPER_SOURCE, "MNIST", "GPU", precision, 256, 3, 60_000, fraction)
    for precision, fraction in {"float64": 0.0, "float32": 0.46, "float16": 1.0}.items()
)
PAPER_ARCHITECTURE = (256, 3)
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's raw bits as integers: equal exactly when the floats are bitwise equal.

    (``==`` on floats calls 0.0 and -0.0 equal and NaN unequal to itself.)
    """
    return tensor.view(_BITS[tensor.element_size()])


def predicted_fraction(rate: float, pre_activations: float) -> float:
    """The fraction of initialisations expected to meet at least one exact zero when each
    computes ``pre_activations`` pre-activations and zeros arrive at ``rate`` per
    pre-activation, independently (Poisson): ``1 - exp(-rate * N)``."""
    return float(-np.expm1(-rate * pre_activations))


def exposure_for(fraction: float, rate: float) -> float:
    """The pre-activations per initialisation at which ``rate`` predicts ``fraction``
    (the inverse of ``predicted_fraction``); inf when the rate is 0."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), not {fraction}")
    return math.inf if rate <= 0 else float(-np.log1p(-fraction) / rate)


def set_zero_grad(stack: SeedStack, value: float) -> None:
    """Make every activation of ``stack`` use f'(0) := ``value`` from its next forward pass."""
    for act in stack.acts:
        act.zero_grad = float(value)


def _compared(stack: SeedStack, compare: str) -> list[torch.nn.Parameter]:
    """The parameters whose gradients are compared bitwise (``COMPARE``)."""
    if compare == "all":
        return list(stack.parameters())
    if compare == "first_layer":
        return [stack.weights[0]]
    raise ValueError(f"compare must be one of {', '.join(COMPARE)}, not {compare!r}")


def _backward(stack: SeedStack, logits: torch.Tensor, y: torch.Tensor, compared: list):
    """The compared parameters' gradients (stacked over inits) of one batch's mean loss."""
    stack.zero_grad(set_to_none=True)
    per_seed_cross_entropy(logits, y).sum().backward()
    return [p.grad.detach().clone() for p in compared]


def compare_gradients(
    stack: SeedStack,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    zero_grad: float = 1.0,
    compare: str = "all",
    skip_batches_without_zeros: bool = True,
) -> dict[str, torch.Tensor | int]:
    """One pass over ``x``/``y`` in their stored order; per init (dim 0 of the stack).

    Each batch's gradients are computed with f'(0) = 0 and with f'(0) = ``zero_grad`` on the
    same weights and the same batch, in the stack's dtype, and compared bitwise (every
    parameter, or the first layer's weight with ``compare="first_layer"``). Returns per
    init: ``differ`` (some batch differed), ``differing_batches``, ``first_differing_batch``
    (-1 when none), ``exact_zeros`` (pre-activations exactly 0), ``live_exact_zeros`` (those
    that met a non-zero upstream gradient, in the f'(0) = 0 pass), ``max_grad_diff_norm`` (the
    largest L2 norm, over batches, of the difference of the compared gradient, in float64); and
    ``batches`` and ``batches_with_both_passes``.

    With ``skip_batches_without_zeros`` a batch whose forward pass has no exact zero in any
    init ends there: f'(0) is read nowhere in it, so its two gradients are equal by
    construction.
    """
    seeds, n = stack.seeds, x.shape[0]
    device = x.device
    compared = _compared(stack, compare)
    differing = torch.zeros(seeds, dtype=torch.int64, device=device)
    first = torch.full((seeds,), -1, dtype=torch.int64, device=device)
    exact_zeros = torch.zeros(seeds, dtype=torch.int64, device=device)
    live_zeros = torch.zeros(seeds, dtype=torch.int64, device=device)
    max_norm = torch.zeros(seeds, dtype=torch.float64, device=device)
    stack.train()
    batches = both = 0
    seen = 0
    try:
        for batch, start in enumerate(range(0, n, batch_size)):
            batches += 1
            xb = x[start : start + batch_size].expand(seeds, -1, -1)
            yb = y[start : start + batch_size].expand(seeds, -1)
            set_zero_grad(stack, 0.0)
            with counting_exact_zeros(stack.acts, exact_zeros, live_zeros):
                logits0 = stack(xb)
                if skip_batches_without_zeros:
                    total = int(exact_zeros.sum())
                    if total == seen:
                        continue
                    seen = total
                grads0 = _backward(stack, logits0, yb, compared)
            both += 1
            set_zero_grad(stack, zero_grad)
            logits1 = stack(xb)
            grads1 = _backward(stack, logits1, yb, compared)
            if not torch.equal(bits(logits0.detach()), bits(logits1.detach())):
                raise RuntimeError(
                    "the two forward passes differ: the kernels are not deterministic, so a "
                    "bitwise comparison of gradients would measure noise"
                )
            now = torch.zeros(seeds, dtype=torch.bool, device=device)
            squared = torch.zeros(seeds, dtype=torch.float64, device=device)
            for g0, g1 in zip(grads0, grads1, strict=True):
                now |= (bits(g0) != bits(g1)).reshape(seeds, -1).any(dim=1)
                squared += (g1.double() - g0.double()).reshape(seeds, -1).square().sum(dim=1)
            differing += now
            first = torch.where((first < 0) & now, batch, first)
            max_norm = torch.fmax(max_norm, squared.sqrt())
    finally:
        set_zero_grad(stack, 0.0)
        stack.zero_grad(set_to_none=True)
    return {
        "batches": batches,
        "batches_with_both_passes": both,
        "differ": differing > 0,
        "differing_batches": differing,
        "first_differing_batch": first,
        "exact_zeros": exact_zeros,
        "live_exact_zeros": live_zeros,
        "max_grad_diff_norm": max_norm,
    }


def device_label(device: torch.device | str) -> str:
    """The device a cell ran on, with what decides its kernels: the GPU's name and whether
    float32 matmuls may use TF32, or the CPU's architecture and thread count (CPU half-precision
    matmuls accumulate in float32; GPU ones may not)."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        tf32 = "on" if torch.backends.cuda.matmul.allow_tf32 else "off"
        return f"cuda ({name}, TF32 {tf32})"
    threads = torch.get_num_threads()
    return f"cpu ({platform.machine()}, {threads} thread{'' if threads == 1 else 's'})"


def measure(
    x: torch.Tensor,
    y: torch.Tensor,
    precision: str,
    width: int,
    depth: int,
    batch_size: int,
    inits: int | Sequence[int],
    activation: str = "relu",
    zero_grad: float = 1.0,
    init: str = "default",
    device: torch.device | str = "cpu",
    inits_at_once: int = 64,
    dataset: str = "",
    inputs: str = "standardised",
    compare: str = "all",
    skip_batches_without_zeros: bool = True,
) -> pd.DataFrame:
    """One row per initialisation (``INIT_COLUMNS``) of a ``depth`` x ``width`` MLP.

    ``x``/``y``: the training set (inputs flattened, already scaled as ``inputs`` says), in the
    order it is passed through. ``inits``: a count K (initialisations 0..K-1) or the list of
    initialisation seeds.
    """
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r}; allowed: {', '.join(DTYPES)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, not {inputs!r}")
    seeds = list(range(inits)) if isinstance(inits, int) else [int(s) for s in inits]
    device = torch.device(device)
    if device.type == "cuda":
        # Deterministic cuBLAS, so that equal inputs give bitwise equal products.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    dtype = DTYPES[precision]
    classes = int(y.max()) + 1
    x = x.reshape(len(x), -1).to(device=device, dtype=dtype)
    y = y.to(device=device, dtype=torch.int64)
    where = device_label(device)
    recorded = machine.columns(device)
    rows = []
    for chunk_start in range(0, len(seeds), inits_at_once):
        chunk = seeds[chunk_start : chunk_start + inits_at_once]
        stack = build_stack(
            chunk,
            in_features=x.shape[1],
            classes=classes,
            width=width,
            depth=depth,
            activation=activation,
            zero_grad=0.0,
            batch_norm=False,
            init=init,
            dtype=dtype,
            device=device,
        )
        result = compare_gradients(
            stack, x, y, batch_size, zero_grad, compare, skip_batches_without_zeros
        )
        result = {k: v.cpu().tolist() if torch.is_tensor(v) else v for k, v in result.items()}
        for i, seed in enumerate(chunk):
            rows.append(
                {
                    "dataset": dataset,
                    "inputs": inputs,
                    "compare": compare,
                    "device": where,
                    "activation": activation,
                    "precision": precision,
                    "width": width,
                    "depth": depth,
                    "batch_size": batch_size,
                    "zero_grad": float(zero_grad),
                    "init": seed,
                    "examples": len(x),
                    "batches": result["batches"],
                    "pre_activations": len(x) * width * depth,
                    **{key: result[key][i] for key in _PER_INIT},
                    "batches_with_both_passes": result["batches_with_both_passes"],
                    **recorded,
                }
            )
    return pd.DataFrame(rows, columns=INIT_COLUMNS)


def measure_grid(
    x: torch.Tensor,
    y: torch.Tensor,
    precision: str,
    widths: Sequence[int],
    depths: Sequence[int],
    batch_size: int,
    inits: int | Sequence[int],
    **options,
) -> pd.DataFrame:
    """``measure`` for every width and depth, in one table."""
    pairs = [(width, depth) for width in widths for depth in depths]
    return measure_architectures(x, y, precision, pairs, batch_size, inits, **options)


def measure_architectures(
    x: torch.Tensor,
    y: torch.Tensor,
    precision: str,
    architectures: Sequence[tuple[int, int]],
    batch_size: int,
    inits: int | Sequence[int],
    **options,
) -> pd.DataFrame:
    """``measure`` for every ``(width, depth)`` pair, in one table (a sweep that is not a
    product, such as the paper's widths at depth 3 and depths at width 256)."""
    frames = [
        measure(x, y, precision, width, depth, batch_size, inits, **options)
        for width, depth in dict.fromkeys((int(w), int(d)) for w, d in architectures)
    ]
    return pd.concat(frames, ignore_index=True)


def inits_of(settings: dict, precision: str) -> int:
    """The initialisations of a ``bifurcation`` config for ``precision``: its entry in
    ``inits_by_precision`` when there is one, otherwise ``inits``."""
    return int((settings.get("inits_by_precision") or {}).get(precision, settings["inits"]))


def architectures(settings: dict) -> list[tuple[int, int]]:
    """The ``(width, depth)`` pairs of a ``bifurcation`` config: its ``architectures`` list
    when given, otherwise every width with every depth."""
    listed = settings.get("architectures") or []
    if listed:
        return [(int(a["width"]), int(a["depth"])) for a in listed]
    return [(int(w), int(d)) for w in settings["widths"] for d in settings["depths"]]


def _rate_note(zeros: int, high: float) -> str:
    """What a cell's rate rests on, in words, when it rests on nothing observed."""
    return f"no exact zero seen: rate < {high:.2g} (95 %)" if zeros == 0 else ""


def cell_row(group: pd.DataFrame) -> dict:
    """The table's statistics of one cell's per-init rows (see ``table``)."""
    k, n = int(group["differ"].sum()), len(group)
    low, high = wilson_interval(k, n)
    exposure = int(group["pre_activations"].iloc[0])
    total = int(group["pre_activations"].sum())
    zeros, live = int(group["exact_zeros"].sum()), int(group["live_exact_zeros"].sum())
    rate = zeros / total
    rate_low, rate_high = garwood_interval(zeros, total)
    differing = group[group["differ"].astype(bool)]
    batches = int(group["batches"].iloc[0])
    return {
        "activation": group["activation"].iloc[0],
        "inits": n,
        "differ": k,
        "fraction_differ": k / n,
        "ci_low": low,
        "ci_high": high,
        "examples": int(group["examples"].iloc[0]),
        "batches": batches,
        "pre_activations_per_init": exposure,
        "exact_zeros": zeros,
        "live_exact_zeros": live,
        "exact_zero_rate": rate,
        "exact_zero_rate_ci_low": rate_low,
        "exact_zero_rate_ci_high": rate_high,
        "exact_zero_rate_note": _rate_note(zeros, rate_high),
        "live_exact_zero_rate": live / total,
        "predicted_fraction_differ": predicted_fraction(rate, exposure),
        "predicted_ci_low": predicted_fraction(rate_low, exposure),
        "predicted_ci_high": predicted_fraction(rate_high, exposure),
        "inits_with_exact_zero": float((group["exact_zeros"] > 0).mean()),
        "differing_batch_fraction": group["differing_batches"].sum() / (n * batches),
        "first_differing_batch_median": (
            float(differing["first_differing_batch"].median()) if len(differing) else math.nan
        ),
        "max_grad_diff_norm_median": (
            float(differing["max_grad_diff_norm"].median()) if len(differing) else math.nan
        ),
        **machine_of(group),
    }


def machine_of(group: pd.DataFrame) -> dict:
    """The machine columns of a cell's per-init rows (one job, so one machine), with empty
    text where a CSV read them back as missing; none for rows written before they existed."""
    found = {}
    for column in machine.COLUMNS:
        if column in group:
            value = group[column].iloc[0]
            found[column] = "" if pd.isna(value) else value
    return found


def table(per_init: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (``CELL``: dataset, inputs, compare, device, precision, width, depth,
    batch size).

    ``fraction_differ``: the fraction of initialisations whose gradients differed in some
    batch, with its Wilson 95 % interval (``ci_low``, ``ci_high``). ``exact_zero_rate``: exact
    zeros per pre-activation computed, with its exact Poisson (Garwood) 95 % interval; a cell
    without any says so in ``exact_zero_rate_note`` and its interval's top is the upper bound.
    ``predicted_fraction_differ``: the fraction that rate predicts at the cell's own exposure
    (``pre_activations_per_init``), with the rate's interval carried through.
    """
    per_init = _with_defaults(per_init)
    rows = [
        {**dict(zip(CELL, key, strict=True)), **cell_row(group)}
        for key, group in per_init.groupby(CELL, sort=False)
    ]
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    order = {p: i for i, p in enumerate(PRECISIONS)}
    out["_order"] = out["precision"].map(order)
    keys = ["dataset", "inputs", "compare", "device", "width", "depth", "batch_size", "_order"]
    out = out.sort_values(keys).drop(columns="_order")
    return out.reset_index(drop=True)


def _with_defaults(per_init: pd.DataFrame) -> pd.DataFrame:
    """Per-init rows written before inputs, compare, device and examples were recorded."""
    defaults = {"inputs": "standardised", "compare": "all", "device": "cpu", "dataset": ""}
    out = per_init.assign(**{k: v for k, v in defaults.items() if k not in per_init})
    if "examples" not in out:
        out = out.assign(examples=out["pre_activations"] // (out["width"] * out["depth"]))
    return out
