"""What an activation costs: forward plus backward time per element, medians over repeats.

Every variant runs on the same random input of each size; the repeats are interleaved (every
variant once per repeat, in a shuffled order), and each timing is paired with a timing of the
reference taken just before it, so that the load of a shared machine cancels out of the ratio.
The reference is PyTorch's own ReLU; relulab's zero-gradient variants (f'(0) := 0, 0.5, 1) are
timed next to it and next to PyTorch's own module of each kinked activation. This is a
benchmark, not a test: its numbers depend on the machine and its load.

Noise is measured, not assumed: each ``relative`` has a distribution-free 95 % interval of its
median over repeats, and a second, separate torch.relu module (``NULL``) is timed like any other
variant. What it measures against the reference is what noise alone does; a variant is called
"cheaper" or "dearer" only when its interval lies outside the null's (``verdict``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from relulab.experiments import machine
from relulab.nn import activations, native
from relulab.nn.models import DTYPES

REFERENCE = "torch.relu"
# The same operation as the reference, as a module of its own: the null comparison.
NULL = "torch.relu (null)"
# relulab's zero-gradient ReLU may cost at most this multiple of torch.relu.
ZERO_GRAD_RELU_LIMIT = 1.5
_TORCH_MODULES = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "prelu": nn.PReLU,
    "rrelu": nn.RReLU,
}


@dataclass(frozen=True)
class Variant:
    """One activation implementation: PyTorch's own module, or relulab's with f'(0) := zero_grad."""

    activation: str
    zero_grad: float | None = None
    torch_own: bool = False
    null: bool = False

    @property
    def label(self) -> str:
        if self.null:
            return NULL
        if self.torch_own:
            return f"torch.{self.activation}"
        if self.zero_grad is None:
            return self.activation
        return f"{self.activation} (f'(0)={self.zero_grad:g})"

    @property
    def implementation(self) -> str:
        return "pytorch" if self.torch_own or self.zero_grad is None else "relulab"

    def runs_compiled_operator(self, device: str) -> bool:
        """Whether this variant runs relulab's compiled operator (``relulab.nn.native``) there."""
        if self.implementation != "relulab" or torch.device(device).type != "cpu":
            return False
        if native.operators() is None:
            return False
        if self.activation == "relu":
            return self.zero_grad not in (0.0, 1.0)  # 0 and 1 are PyTorch's own ops
        return self.activation == "leaky_relu"

    def build(self) -> nn.Module:
        if self.torch_own:
            return _TORCH_MODULES[self.activation]()
        return activations.build(self.activation, self.zero_grad)


def variants(zero_grads: Iterable[float] = (0.0, 0.5, 1.0)) -> list[Variant]:
    """PyTorch's own kinked activations, relulab's at each ``zero_grad``, the smooth ones."""
    found = []
    for name in activations.KINKED:
        found.append(Variant(name, torch_own=True))
        if name == "relu":
            found.append(Variant(name, torch_own=True, null=True))
        found += [Variant(name, float(z)) for z in zero_grads]
    found += [Variant(name) for name in activations.SMOOTH]
    return found


def median_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval of the median: order statistics at binomial ranks.

    With n values the interval runs from the j-th smallest to the j-th largest, j the
    ``(1 - confidence) / 2`` quantile of Binomial(n, 1/2) (at least 1): at n = 20, the 6th to
    the 15th. Fewer than 2 values give NaN.
    """
    ordered = np.sort(np.asarray(values, dtype=float))
    n = len(ordered)
    if n < 2:
        return math.nan, math.nan
    j = max(int(stats.binom.ppf((1 - confidence) / 2, n, 0.5)), 1)
    return float(ordered[j - 1]), float(ordered[n - j])


def add_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """``verdict`` per row: "cheaper" or "dearer" than torch.relu only outside the noise band.

    The band, per device and size, is the null variant's interval of ``relative`` widened to
    include 1; a variant's own interval must lie wholly below or above it. The reference and
    the null are labelled as such; without a null row the band is 1 alone.
    """
    table = table.copy()
    verdicts = []
    for row in table.itertuples():
        if row.variant in (REFERENCE, NULL):
            verdicts.append("reference" if row.variant == REFERENCE else "null")
            continue
        null = table[
            (table["device"] == row.device)
            & (table["elements"] == row.elements)
            & (table["variant"] == NULL)
        ]
        low = min(1.0, float(null["relative_low"].iloc[0])) if len(null) else 1.0
        high = max(1.0, float(null["relative_high"].iloc[0])) if len(null) else 1.0
        if row.relative_high < low:
            verdicts.append("cheaper")
        elif row.relative_low > high:
            verdicts.append("dearer")
        else:
            verdicts.append("within noise")
    table["verdict"] = verdicts
    return table


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _once(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> float:
    """Seconds of one forward + backward (input and parameter gradients) of ``module``."""
    inputs = [x, *module.parameters()]
    _sync(x.device)
    start = time.perf_counter()
    torch.autograd.grad(module(x), inputs, upstream)
    _sync(x.device)
    return time.perf_counter() - start


def time_variants(
    modules: dict[str, nn.Module],
    reference: str,
    elements: int,
    repeats: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    warmup: int = 3,
    seed: int = 0,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds of forward + backward per repeat for each module, and its time over the
    reference's, timed right before it.

    All modules see the same input and upstream gradient. Each repeat times every module once,
    in a shuffled order, each timing right after an untimed call of the same module (so that
    its data is in cache) and right after a timing of ``reference``: the ratio of the two is
    paired in time, so a load that comes and goes on a shared machine cancels out of it.
    """
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(elements, generator=g, dtype=torch.float64).to(device, dtype)
    upstream = torch.randn(elements, generator=g, dtype=torch.float64).to(device, dtype)
    x.requires_grad_(True)
    modules = {k: m.to(device=device, dtype=dtype).train() for k, m in modules.items()}
    times: dict[str, list[float]] = {k: [] for k in modules}
    ratios: dict[str, list[float]] = {k: [] for k in modules}
    keys = list(modules)

    def warm_timing(module: nn.Module) -> float:
        _once(module, x, upstream)
        return _once(module, x, upstream)

    for repeat in range(warmup + repeats):
        for index in torch.randperm(len(keys), generator=g).tolist():
            before = warm_timing(modules[reference])
            seconds = warm_timing(modules[keys[index]])
            if repeat >= warmup:
                times[keys[index]].append(seconds)
                ratios[keys[index]].append(seconds / before)
    return times, ratios


def benchmark(
    sizes: Iterable[int] = (10_000, 100_000, 1_000_000),
    repeats: int = 20,
    devices: Iterable[str] | None = None,
    precision: str = "float32",
    zero_grads: Iterable[float] = (0.0, 0.5, 1.0),
) -> pd.DataFrame:
    """One row per (device, size, variant): median seconds and nanoseconds per element.

    ``devices`` defaults to the CPU and, when one is present, the GPU. ``relative`` is the
    median over repeats of the variant's time over PyTorch's own ReLU's, timed just before it,
    divided by the same median for PyTorch's ReLU against itself (so 1 for the reference): the
    division removes what being timed second rather than first does alone.
    """
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    dtype = DTYPES[precision]
    chosen = variants(zero_grads)
    native.operators()  # built (once per PyTorch version) before anything is timed
    rows = []
    for device in devices:
        where = machine.columns(device)
        for elements in sizes:
            modules = {v.label: v.build() for v in chosen}
            times, ratios = time_variants(modules, REFERENCE, int(elements), repeats, device, dtype)
            # The reference against itself: what timing second rather than first does alone.
            order_bias = float(np.median(ratios[REFERENCE]))
            for variant in chosen:
                seconds = np.asarray(times[variant.label])
                median = float(np.median(seconds))
                relative = np.asarray(ratios[variant.label]) / order_bias
                low, high = median_interval(relative)
                rows.append(
                    {
                        "device": device,
                        "precision": precision,
                        "elements": int(elements),
                        "activation": variant.activation,
                        "zero_grad": variant.zero_grad,
                        "implementation": variant.implementation,
                        "variant": variant.label,
                        "repeats": len(seconds),
                        "median_s": median,
                        "q25_s": float(np.quantile(seconds, 0.25)),
                        "q75_s": float(np.quantile(seconds, 0.75)),
                        "ns_per_element": median / elements * 1e9,
                        "relative": float(np.median(relative)),
                        "relative_low": low,
                        "relative_high": high,
                        "threads": torch.get_num_threads() if device == "cpu" else None,
                        "compiled_operator": variant.runs_compiled_operator(device),
                        # Where these numbers hold (the thread count is the CPU's).
                        **{k: v for k, v in where.items() if k != "threads"},
                    }
                )
    return add_verdicts(pd.DataFrame(rows))


def zero_grad_relu_overhead(table: pd.DataFrame) -> pd.DataFrame:
    """relulab's ReLU at each f'(0) against PyTorch's, per device and size (``relative``)."""
    ours = table[(table["activation"] == "relu") & (table["implementation"] == "relulab")]
    columns = ["device", "elements", "zero_grad", "variant", "ns_per_element", "relative"]
    return ours[columns + (["compiled_operator"] if "compiled_operator" in ours else [])]
