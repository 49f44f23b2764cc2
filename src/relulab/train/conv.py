"""Training the seeds of one grid point with convolutional networks, one network per seed.

``SeedStack`` batches MLPs over seeds with batched matrix products; convolutions with batch norm
do not stack that simply, so here each seed keeps its own ``VGG``/``ResNet`` and the seeds take
their minibatch steps side by side inside the same job. Everything else is
``training.SeedStackModule``'s: one Lightning step per epoch, the same per-seed data order, RReLU
noise and initial weights fixed by the seed alone, the same ``History`` rows, checkpoints,
divergence handling and counters. ``measure`` follows ``training.measure``'s semantics (whole
training set, eval mode, weights frozen, the run's own precision) but walks the data in chunks,
since a convolutional network's activations on a whole data set rarely fit in memory at once;
a unit is a channel, dead when its local derivative is 0 at every position of every example.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial

import torch
from torch import nn

from relulab.data.prepared import Split
from relulab.nn import convnets, probes
from relulab.train.core import (
    _NOISE_STREAM,
    SeedStackModule,
    Settings,
    generator,
    per_seed_cross_entropy,
)

MEASURE_BATCH = 1024


class SeedModels(nn.Module):
    """One convolutional network per seed, all of one architecture."""

    def __init__(self, models: list[nn.Module], generators: list[torch.Generator] | None = None):
        super().__init__()
        self.models = nn.ModuleList(models)
        self.generators = list(generators or [])

    @property
    def seeds(self) -> int:
        return len(self.models)

    @property
    def depth(self) -> int:
        """Number of activation layers (hidden "layers" of a study), the same for every seed."""
        return len(convnets.activation_modules(self.models[0]))


def build_models(
    seeds: list[int],
    arch: str,
    in_shape: tuple[int, int, int],
    classes: int,
    width: int,
    depth: int,
    activation: str,
    zero_grad: float | None,
    batch_norm: bool,
    init: str,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> SeedModels:
    """The seeds' networks, initialised by seed alone; RReLU noise from each seed's own stream."""
    noise = (
        [generator(seed, _NOISE_STREAM, device) for seed in seeds] if activation == "rrelu" else []
    )
    models = [
        convnets.seeded(
            arch,
            seed,
            in_shape=in_shape,
            classes=classes,
            depth=depth,
            width=width,
            activation=activation,
            zero_grad=zero_grad,
            batch_norm=batch_norm,
            init=init,
            rrelu_generator=noise[i] if noise else None,
        )
        for i, seed in enumerate(seeds)
    ]
    return SeedModels(models, noise).to(device=device, dtype=dtype)


@contextmanager
def _capturing(model: nn.Module):
    """Collects ``(activation, its input, its output)`` for each forward call of an activation."""
    captured: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []

    def capture(module, inputs, output):
        captured.append((module, inputs[0], output))

    handles = [m.register_forward_hook(capture) for m in convnets.activation_modules(model)]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _sum_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return per_seed_cross_entropy(logits[None], labels[None])[0].double() * len(labels)


@torch.no_grad()
def measure_one(model: nn.Module, data: Split, batch: int = MEASURE_BATCH) -> dict:
    """One network's metrics on the whole training set and the test set, ``batch`` at a time.

    Returns scalars ``train_loss``, ``val_loss``, ``val_accuracy`` and, per activation layer in
    forward order, ``dead``/``inactive`` channel masks ``[channels]`` and ``sparsity``.
    """
    was_training = model.training
    model.eval()
    try:
        n = data.x_train.shape[0]
        train_loss = torch.zeros((), dtype=torch.float64, device=data.x_train.device)
        dead: list[torch.Tensor] = []
        inactive: list[torch.Tensor] = []
        zeros: list[torch.Tensor] = []
        sizes: list[int] = []
        for start in range(0, n, batch):
            x, y = data.x_train[start : start + batch], data.y_train[start : start + batch]
            with _capturing(model) as captured:
                train_loss += _sum_cross_entropy(model(x), y)
            for layer, (act, z, out) in enumerate(captured):
                dead_here = probes.dead_mask(probes.local_derivative(act, z))
                inactive_here = probes.inactive_mask(z)
                zeros_here = (out == 0).sum()
                if layer == len(dead):
                    dead.append(dead_here)
                    inactive.append(inactive_here)
                    zeros.append(zeros_here)
                    sizes.append(0)
                else:
                    dead[layer] &= dead_here
                    inactive[layer] &= inactive_here
                    zeros[layer] += zeros_here
                sizes[layer] += out.numel()
        val_loss = torch.zeros((), dtype=torch.float64, device=data.x_test.device)
        correct = torch.zeros((), dtype=torch.int64, device=data.x_test.device)
        for start in range(0, data.x_test.shape[0], batch):
            x, y = data.x_test[start : start + batch], data.y_test[start : start + batch]
            logits = model(x)
            val_loss += _sum_cross_entropy(logits, y)
            correct += (logits.argmax(dim=-1) == y).sum()
    finally:
        model.train(was_training)
    n_test = data.x_test.shape[0]
    return {
        "train_loss": train_loss / n,
        "val_loss": val_loss / n_test,
        "val_accuracy": correct.double() / n_test,
        "dead": dead,
        "inactive": inactive,
        "sparsity": [z.double() / size for z, size in zip(zeros, sizes, strict=True)],
    }


def measure(models: SeedModels, data: Split, batch: int = MEASURE_BATCH) -> dict:
    """``training.measure``'s result for networks held one per seed (leading seed dimension)."""
    per_seed = [measure_one(model, data, batch) for model in models.models]
    out = {
        key: torch.stack([m[key] for m in per_seed])
        for key in ("train_loss", "val_loss", "val_accuracy")
    }
    for key in ("dead", "inactive", "sparsity"):
        out[key] = [torch.stack(layer) for layer in zip(*(m[key] for m in per_seed), strict=True)]
    return out


class ConvSeedsModule(SeedStackModule):
    """``SeedStackModule`` for ``SeedModels``: each seed's network steps on its own minibatch."""

    def __init__(
        self, stack: SeedModels, data: Split, settings: Settings, measure_batch: int = MEASURE_BATCH
    ):
        super().__init__(stack, data, settings)
        self.measure_batch = measure_batch

    @property
    def dtype_of_stack(self) -> torch.dtype:
        return next(self.stack.parameters()).dtype

    def _noise_generators(self) -> list[torch.Generator]:
        return self.stack.generators

    def _measure(self) -> dict[str, torch.Tensor]:
        return measure(self.stack, self.data, self.measure_batch)

    def _train_one_epoch(self, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
        models, data, batch_size = self.stack, self.data, self.settings.batch_size
        seeds, n = models.seeds, data.x_train.shape[0]
        device = data.x_train.device
        exact_zeros = torch.zeros(seeds, dtype=torch.int64, device=device)
        live_zeros = torch.zeros(seeds, dtype=torch.int64, device=device)
        grad_norms = torch.zeros(models.depth, seeds, dtype=torch.float64, device=device)
        orders = torch.stack([torch.randperm(n, generator=g) for g in self.order]).to(device)
        steps = 0

        def count_zeros(seed: int, _module, inputs, output) -> None:
            # The live count needs the gradient with respect to the activation's output: the
            # gradient at its input is already multiplied by f'(0), so it is 0 when f'(0) = 0.
            zero = inputs[0].detach() == 0
            exact_zeros[seed] += zero.sum()
            if output.requires_grad:

                def count_live(upstream: torch.Tensor) -> None:
                    live_zeros[seed] += (zero & (upstream != 0)).sum()

                output.register_hook(count_live)

        handles = [
            act.register_forward_hook(partial(count_zeros, s))
            for s, model in enumerate(models.models)
            for act in convnets.activation_modules(model)
        ]
        models.train()
        try:
            for start in range(0, n, batch_size):
                optimizer.zero_grad(set_to_none=True)
                for s, model in enumerate(models.models):
                    index = orders[s, start : start + batch_size]
                    logits = model(data.x_train[index])
                    loss = per_seed_cross_entropy(logits[None], data.y_train[index][None])[0]
                    self.alive[s] &= torch.isfinite(loss)
                    torch.where(self.alive[s], loss, 0).backward()
                    for layer, weight in enumerate(model.hidden_weights()):
                        grad_norms[layer, s] += torch.linalg.vector_norm(weight.grad)
                optimizer.step()
                steps += 1
        finally:
            for handle in handles:
                handle.remove()
        return {
            "exact_zeros": exact_zeros,
            "live_zeros": live_zeros,
            "grad_norm": grad_norms / max(steps, 1),
            "steps": steps,
        }
