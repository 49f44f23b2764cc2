"""Training-step cost: what each activation costs in a whole step at the study's sizes.

Prints, per optimizer, the median time of one training step (zero the gradients, forward,
cross-entropy, backward, the optimizer's update) of an MLP with each activation, and its ratio to
the same MLP with PyTorch's own ReLU, timed just before it, with a distribution-free 95 % interval
and the verdict against a second ReLU model timed like any other (the null)
(``relulab.experiments.cost_step``). Inputs are MNIST-1D-shaped random batches (40 features,
10 classes) unless ``--data`` names a prepared dataset. The machine it holds on is printed first.

    python benchmarks/training_step_cost.py                      # batch 64, 3 x 100, as the study
    python benchmarks/training_step_cost.py --batch 256 --width 256 --optimizers adam sgd
"""

from __future__ import annotations

import argparse

import torch

from relulab.experiments import cost_step, machine
from relulab.nn import activations


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--optimizers", nargs="+", default=["adam", "sgd", "momentum"])
    every = [*activations.KINKED, *activations.SMOOTH]
    parser.add_argument("--activations", nargs="+", default=every)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--steps", type=int, default=5, help="steps per timing")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study: 1)")
    parser.add_argument("--data", help="a prepared .npz (results/data/...) instead of random")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    if args.data:
        from relulab.data import prepared

        split = prepared.load(args.data)
        x, y = split.x_train, split.y_train
    else:
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(4000, 40, generator=g), torch.randint(0, 10, (4000,), generator=g)
    size = cost_step.StepSize(args.batch, args.width, args.depth, x[0].numel(), int(y.max()) + 1)
    print(machine.describe(machine.columns()))
    table = cost_step.benchmark(
        x,
        y,
        size,
        cost_step.step_variants(args.activations),
        optimizers=args.optimizers,
        repeats=args.repeats,
        steps=args.steps,
    )
    shown = table[
        ["optimizer", "variant", "microseconds_per_step", "ratio_to_relu", "ratio_low"]
        + ["ratio_high", "verdict"]
    ]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
