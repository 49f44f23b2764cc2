"""Monitor overhead: training with and without ``DeadUnitMonitor``'s check at its defaults.

Two networks train in one run on the CPU: a torchvision ResNet-18 with 10 classes on
CIFAR-shaped generated data (3x32x32, batch 64, SGD with momentum) and the default study's
MLP (``config/config.yaml``: width 100, 3 hidden ReLU layers, Adam, batch 64) on MNIST-1D. For
each, every repeat times, in turn, a block of training steps without the monitor and one check
of the monitor as the callback runs it (probe set of ``DEFAULT_SIZE`` examples, per-layer
metrics and the per-unit table); medians over repeats. The overhead at the default frequency
is one check per ``DEFAULT_EVERY_N_STEPS`` steps: check / (N x step). Where N steps are cheap
enough (``--end-to-end``, the MLP by default) the same is measured directly: N steps with the
check against N steps without, interleaved.

    python benchmarks/monitor_overhead.py                  # the table of benchmarks/README.md
    python benchmarks/monitor_overhead.py --repeats 5 --end-to-end mlp resnet18
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision
import yaml
from torch import nn

from relulab.data import prepared
from relulab.monitor import DEFAULT_SIZE, Monitor, ProbeSet
from relulab.monitor.callback import DEFAULT_EVERY_N_STEPS
from relulab.nn import models

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64


class Setup:
    """A network, its optimiser and its training data, stepping through minibatches."""

    def __init__(self, name: str, model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor):
        self.name, self.model, self.optimizer, self.x, self.y = name, model, optimizer, x, y
        self.generator = torch.Generator().manual_seed(0)
        self.order = torch.empty(0, dtype=torch.int64)

    def step(self) -> None:
        if len(self.order) < BATCH:
            self.order = torch.randperm(len(self.x), generator=self.generator)
        index, self.order = self.order[:BATCH], self.order[BATCH:]
        self.optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(self.model(self.x[index]), self.y[index])
        loss.backward()
        self.optimizer.step()


def mlp_setup() -> Setup:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    arrays = prepared.make_mnist1d()
    x, _ = prepared.standardise(np.asarray(arrays["x_train"], np.float64), arrays["x_test"])
    x = torch.from_numpy(x).float()
    y = torch.from_numpy(np.asarray(arrays["y_train"], np.int64))
    torch.manual_seed(0)
    width, depth = config["model"]["width"], config["model"]["depth"]
    model = models.mlp(x.shape[1], width, depth, 10, "relu")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Setup(f"MLP {depth}x{width} (MNIST-1D)", model, optimizer, x, y)


def resnet_setup() -> Setup:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4096, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (4096,), generator=g)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return Setup("ResNet-18 (3x32x32)", model, optimizer, x, y)


SETUPS: dict[str, Callable[[], Setup]] = {"resnet18": resnet_setup, "mlp": mlp_setup}


def check_as_the_callback_does(monitor: Monitor, directory: Path, step: int) -> None:
    check = monitor.check(step)
    check.metrics()
    check.unit_table().to_csv(directory / f"units_step{step:08d}.csv", index=False)


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def steps(setup: Setup, n: int) -> None:
    for _ in range(n):
        setup.step()


def measure(setup: Setup, block: int, repeats: int, end_to_end: bool, every: int) -> dict:
    """Median seconds per step and per check, interleaved; and N steps with/without a check."""
    monitor = Monitor(setup.model, ProbeSet.drawn((setup.x, setup.y), DEFAULT_SIZE, 0))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        steps(setup, 3)  # warm-up
        check_as_the_callback_does(monitor, directory, 0)
        step_s, check_s, without, with_check = [], [], [], []
        for repeat in range(repeats):
            step_s.append(timed(lambda: steps(setup, block)) / block)
            check_s.append(
                timed(lambda r=repeat: check_as_the_callback_does(monitor, directory, r))
            )
            if end_to_end:
                without.append(timed(lambda: steps(setup, every)))

                def steps_and_check() -> None:
                    steps(setup, every)
                    check_as_the_callback_does(monitor, directory, every)

                with_check.append(timed(steps_and_check))
    row = {
        "model": setup.name,
        "step_ms": 1e3 * statistics.median(step_s),
        "check_s": statistics.median(check_s),
    }
    row["check_in_steps"] = row["check_s"] / (row["step_ms"] / 1e3)
    row["derived_overhead_pct"] = 100 * row["check_in_steps"] / every
    if end_to_end:
        ratios = [w / o for w, o in zip(with_check, without, strict=True)]
        row["measured_overhead_pct"] = 100 * (statistics.median(ratios) - 1)
    return row


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return (
        f"{cpu}, {os.cpu_count()} cores visible, {torch.get_num_threads()} torch thread(s), "
        f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}), "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--block", type=int, default=20, help="steps per timed block")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--every", type=int, default=DEFAULT_EVERY_N_STEPS, help="steps/check")
    parser.add_argument("--end-to-end", nargs="*", default=["mlp"], choices=list(SETUPS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    print(f"probe set {DEFAULT_SIZE} examples, one check per {args.every} steps, batch {BATCH}")
    rows = [
        measure(SETUPS[name](), args.block, args.repeats, name in args.end_to_end, args.every)
        for name in args.models
    ]
    print("| model | step (ms) | check (s) | check in steps | overhead, derived | measured |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        measured = r.get("measured_overhead_pct")
        measured = "not run" if measured is None else f"{measured:.1f} %"
        print(
            f"| {r['model']} | {r['step_ms']:.1f} | {r['check_s']:.2f} | "
            f"{r['check_in_steps']:.1f} | {r['derived_overhead_pct']:.2f} % | {measured} |"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
