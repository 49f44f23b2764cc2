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
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from scipy import stats

from relulab.figures import study as plots
from relulab.nn.models import SeedStack
from relulab.train.core import (
    DTYPES,
    build_stack,
    counting_exact_zeros,
    per_seed_cross_entropy,
)

PRECISIONS = ("float64", "float32", "bfloat16", "float16")
# Activations whose two passes see exactly the same forward computation (RReLU draws noise).
ACTIVATIONS = ("relu", "leaky_relu", "prelu")
INIT_COLUMNS = [
    "dataset",
    "activation",
    "precision",
    "width",
    "depth",
    "batch_size",
    "zero_grad",
    "init",
    "batches",
    "pre_activations",
    "differ",
    "differing_batches",
    "first_differing_batch",
    "exact_zeros",
    "live_exact_zeros",
    "max_grad_diff_norm",
]
_PER_INIT = [
    "differ",
    "differing_batches",
    "first_differing_batch",
    "exact_zeros",
    "live_exact_zeros",
    "max_grad_diff_norm",
]
CELL = ["precision", "width", "depth", "batch_size"]
# Bertoin et al. (NeurIPS 2021), 3x256 ReLU MLP on MNIST, batch 256: fraction of
# initialisations with some bitwise different mini-batch gradient (no bfloat16 in the paper).
PAPER_ARCHITECTURE = (256, 3)
PAPER = {"float64": 0.0, "float32": 0.46, "float16": 1.0}
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; ``(nan, nan)`` for no trials.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n
    successes, which is where bifurcation fractions sit (0 % in float64, 100 % in float16).
    """
    if trials <= 0:
        return math.nan, math.nan
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], not {successes}")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At 0 and n successes the bounds are exactly 0 and 1; spare them the rounding.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's raw bits as integers: equal exactly when the floats are bitwise equal.

    (``==`` on floats calls 0.0 and -0.0 equal and NaN unequal to itself.)
    """
    return tensor.view(_BITS[tensor.element_size()])


def set_zero_grad(stack: SeedStack, value: float) -> None:
    """Make every activation of ``stack`` use f'(0) := ``value`` from its next forward pass."""
    for act in stack.acts:
        act.zero_grad = float(value)


def _gradients(stack: SeedStack, x: torch.Tensor, y: torch.Tensor):
    """Logits and every parameter's gradient (stacked over inits) of one batch's mean loss."""
    stack.zero_grad(set_to_none=True)
    logits = stack(x)
    per_seed_cross_entropy(logits, y).sum().backward()
    return logits.detach(), [p.grad.detach().clone() for p in stack.parameters()]


def compare_gradients(
    stack: SeedStack,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    zero_grad: float = 1.0,
) -> dict[str, torch.Tensor | int]:
    """One pass over ``x``/``y`` in their stored order; per init (dim 0 of the stack).

    Each batch's gradients are computed with f'(0) = 0 and with f'(0) = ``zero_grad`` on the
    same weights and the same batch, in the stack's dtype, and compared bitwise. Returns per
    init: ``differ`` (some batch differed), ``differing_batches``, ``first_differing_batch``
    (-1 when none), ``exact_zeros`` (pre-activations exactly 0), ``live_exact_zeros`` (those
    that met a non-zero upstream gradient, in the f'(0) = 0 pass), ``max_grad_diff_norm`` (the
    largest L2 norm, over batches, of the difference of the whole gradient, in float64); and
    ``batches``.
    """
    seeds, n = stack.seeds, x.shape[0]
    device = x.device
    differing = torch.zeros(seeds, dtype=torch.int64, device=device)
    first = torch.full((seeds,), -1, dtype=torch.int64, device=device)
    exact_zeros = torch.zeros(seeds, dtype=torch.int64, device=device)
    live_zeros = torch.zeros(seeds, dtype=torch.int64, device=device)
    max_norm = torch.zeros(seeds, dtype=torch.float64, device=device)
    stack.train()
    batches = 0
    try:
        for batch, start in enumerate(range(0, n, batch_size)):
            xb = x[start : start + batch_size].expand(seeds, -1, -1)
            yb = y[start : start + batch_size].expand(seeds, -1)
            set_zero_grad(stack, 0.0)
            with counting_exact_zeros(stack.acts, exact_zeros, live_zeros):
                logits0, grads0 = _gradients(stack, xb, yb)
            set_zero_grad(stack, zero_grad)
            logits1, grads1 = _gradients(stack, xb, yb)
            if not torch.equal(bits(logits0), bits(logits1)):
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
            batches += 1
    finally:
        set_zero_grad(stack, 0.0)
        stack.zero_grad(set_to_none=True)
    return {
        "batches": batches,
        "differ": differing > 0,
        "differing_batches": differing,
        "first_differing_batch": first,
        "exact_zeros": exact_zeros,
        "live_exact_zeros": live_zeros,
        "max_grad_diff_norm": max_norm,
    }


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
) -> pd.DataFrame:
    """One row per initialisation (``INIT_COLUMNS``) of a ``depth`` x ``width`` MLP.

    ``x``/``y``: the training set (inputs flattened), in the order it is passed through.
    ``inits``: a count K (initialisations 0..K-1) or the list of initialisation seeds.
    """
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r}; allowed: {', '.join(DTYPES)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
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
        result = compare_gradients(stack, x, y, batch_size, zero_grad)
        result = {k: v.cpu().tolist() if torch.is_tensor(v) else v for k, v in result.items()}
        for i, seed in enumerate(chunk):
            rows.append(
                {
                    "dataset": dataset,
                    "activation": activation,
                    "precision": precision,
                    "width": width,
                    "depth": depth,
                    "batch_size": batch_size,
                    "zero_grad": float(zero_grad),
                    "init": seed,
                    "batches": result["batches"],
                    "pre_activations": len(x) * width * depth,
                    **{key: result[key][i] for key in _PER_INIT},
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
    frames = [
        measure(x, y, precision, width, depth, batch_size, inits, **options)
        for width in widths
        for depth in depths
    ]
    return pd.concat(frames, ignore_index=True)


def table(per_init: pd.DataFrame) -> pd.DataFrame:
    """One row per precision, width, depth and batch size: the fraction of initialisations
    whose gradients differed in some batch, with its Wilson 95 % interval, and how often
    pre-activations were exactly 0 (``exact_zero_rate``: per pre-activation computed)."""
    rows = []
    for key, group in per_init.groupby(CELL, sort=False):
        k, n = int(group["differ"].sum()), len(group)
        low, high = wilson_interval(k, n)
        differing = group[group["differ"].astype(bool)]
        rows.append(
            {
                **dict(zip(CELL, key, strict=True)),
                "dataset": group["dataset"].iloc[0],
                "activation": group["activation"].iloc[0],
                "inits": n,
                "differ": k,
                "fraction_differ": k / n,
                "ci_low": low,
                "ci_high": high,
                "batches": int(group["batches"].iloc[0]),
                "pre_activations_per_init": int(group["pre_activations"].iloc[0]),
                "exact_zero_rate": group["exact_zeros"].sum() / group["pre_activations"].sum(),
                "live_exact_zero_rate": group["live_exact_zeros"].sum()
                / group["pre_activations"].sum(),
                "inits_with_exact_zero": float((group["exact_zeros"] > 0).mean()),
                "differing_batch_fraction": group["differing_batches"].sum()
                / (n * group["batches"].iloc[0]),
                "first_differing_batch_median": (
                    float(differing["first_differing_batch"].median())
                    if len(differing)
                    else math.nan
                ),
                "max_grad_diff_norm_median": (
                    float(differing["max_grad_diff_norm"].median()) if len(differing) else math.nan
                ),
            }
        )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    order = {p: i for i, p in enumerate(PRECISIONS)}
    out["_order"] = out["precision"].map(order)
    out = out.sort_values(["width", "depth", "batch_size", "_order"]).drop(columns="_order")
    return out.reset_index(drop=True)


def plot(summary: pd.DataFrame, path) -> None:
    """Fraction of initialisations whose gradients differ, by precision with its Wilson 95 %
    interval; one panel per depth (columns) and width (rows)."""
    import matplotlib.pyplot as plt

    precisions = [p for p in PRECISIONS if p in set(summary["precision"])]
    widths = sorted(summary["width"].unique())
    depths = sorted(summary["depth"].unique())
    figure, axes = plt.subplots(
        len(widths),
        len(depths),
        figsize=(1.2 + 2.6 * len(depths), 0.6 + 2.4 * len(widths)),
        squeeze=False,
        sharey=True,
    )
    positions = np.arange(len(precisions))
    for r, width in enumerate(widths):
        for c, depth in enumerate(depths):
            ax = axes[r][c]
            part = summary[(summary["width"] == width) & (summary["depth"] == depth)]
            part = part.set_index("precision").reindex(precisions)
            fraction = part["fraction_differ"].to_numpy(dtype=float)
            low = fraction - part["ci_low"].to_numpy(dtype=float)
            high = part["ci_high"].to_numpy(dtype=float) - fraction
            ax.bar(positions, fraction, color=sns.color_palette()[0], alpha=0.75)
            ax.errorbar(positions, fraction, yerr=[low, high], fmt="none", color="black", capsize=4)
            tops = part["ci_high"].to_numpy(dtype=float)
            for x_pos, value, top, k in zip(positions, fraction, tops, part["differ"], strict=True):
                if np.isfinite(value):
                    ax.annotate(
                        f"{int(k)}/{int(part['inits'].max())}",
                        (x_pos, top + 0.03),
                        ha="center",
                        fontsize=7,
                    )
            if (width, depth) == PAPER_ARCHITECTURE:
                shown = [
                    (positions[precisions.index(p)], v) for p, v in PAPER.items() if p in precisions
                ]
                if shown:
                    ax.scatter(
                        *zip(*shown, strict=True),
                        marker="D",
                        color="firebrick",
                        zorder=3,
                        label="Bertoin et al. 2021 (MNIST)",
                    )
                    ax.legend(loc="upper left", fontsize=7)
            ax.set_xticks(positions, precisions, rotation=30)
            ax.set_ylim(0, 1.15)
            ax.set_title(f"width {width}, depth {depth}", fontsize=10)
            if c == 0:
                ax.set_ylabel("inits whose gradients differ")
    batch = ", ".join(str(b) for b in sorted(summary["batch_size"].unique()))
    dataset = ", ".join(str(d) for d in summary["dataset"].unique())
    figure.suptitle(
        f"ReLU'(0)=0 vs 1: some batch gradient differs bitwise ({dataset}, batch {batch}; "
        "95 % Wilson interval)",
        fontsize=10,
    )
    figure.tight_layout()
    plots.save(figure, path)
