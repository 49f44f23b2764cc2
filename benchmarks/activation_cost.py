"""Activation cost: relulab's zero-gradient ReLU and Leaky ReLU against PyTorch's own.

Prints, per tensor size, the median forward + backward time of relulab's ReLU and Leaky ReLU
with f'(0) := 0.5 (a value PyTorch has no kernel for) in both of their CPU implementations, the
compiled operators (``relulab.nn.native``) and the Python one used where nothing can be compiled,
each against PyTorch's own module (torch.relu, torch.leaky_relu). Ratios are paired in time
(each timing over a timing of torch.relu taken just before it,
``relulab.experiments.cost.time_variants``),
so the load of a shared machine cancels out of them. The target: the zero-gradient ReLU within
1.5x torch.relu.

    python benchmarks/activation_cost.py
    python benchmarks/activation_cost.py --threads 2 --sizes 10000 1000000
    python benchmarks/activation_cost.py --device cuda --sizes 100000 1000000 10000000
"""

from __future__ import annotations

import argparse
import datetime
import platform
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from relulab.experiments import cost
from relulab.nn import activations, native

LIMIT = cost.ZERO_GRAD_RELU_LIMIT


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--zero-grad", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study: 1)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    return parser.parse_args(argv)


def variants(zero_grad: float, compiled: bool) -> dict[str, tuple[Callable[[], nn.Module], str]]:
    """Name -> (module factory, the name of PyTorch's module it is compared with)."""
    label = f"f'(0)={zero_grad:g}"
    found = {
        "torch.relu": (nn.ReLU, "torch.relu"),
        "torch.leaky_relu": (nn.LeakyReLU, "torch.relu"),
    }
    for implementation in ("compiled", "python") if compiled else ("python",):
        use = implementation == "compiled"
        found[f"relu {label} {implementation}"] = (
            lambda use=use: activations.ZeroGradReLU(zero_grad, compiled=use),
            "torch.relu",
        )
        found[f"leaky_relu {label} {implementation}"] = (
            lambda use=use: activations.ZeroGradLeakyReLU(zero_grad, compiled=use),
            "torch.leaky_relu",
        )
    return found


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    compiled = args.device == "cpu" and native.operators() is not None
    print(
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}, float32; "
        f"compiled operators {'used' if compiled else 'NOT used'}"
    )
    chosen = variants(args.zero_grad, compiled)
    header = f"{'elements':>10} | {'variant':<32} | {'median us':>9} | {'against':<16} | ratio"
    print(header)
    print("-" * len(header))
    for elements in args.sizes:
        built = {name: make() for name, (make, _) in chosen.items()}
        times, ratios = cost.time_variants(
            built, "torch.relu", elements, args.repeats, device=args.device
        )
        paired = {name: float(np.median(ratios[name])) for name in chosen}
        for name, (_, reference) in chosen.items():
            if name == reference:
                continue
            ratio = paired[name] / paired[reference]
            mark = " !" if name.startswith("relu ") and ratio > LIMIT else ""
            print(
                f"{elements:>10,} | {name:<32} | {np.median(times[name]) * 1e6:>9.1f} | "
                f"{reference:<16} | {ratio:.2f}{mark}"
            )
    print(
        "ratio: median of paired timings (each over a timing of torch.relu just before it), "
        f"divided by the same for the module it is against; target for relu <= {LIMIT}x "
        "torch.relu (! = missed)"
    )


if __name__ == "__main__":
    main()
