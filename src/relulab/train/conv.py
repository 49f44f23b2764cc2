"""The seeds of one grid point as convolutional networks, one network per seed.

``StackedMLP`` batches MLPs over seeds with batched matrix products; convolutions with batch norm
do not stack that simply, so here each seed keeps its own ``VGG``/``ResNet`` and the seeds take
their minibatch steps side by side inside the same job. ``SeedModels`` implements the training
core's ``SeedModel`` interface, so everything else is ``relulab.train.core.SeedTraining``'s: the
same per-seed data order, RReLU noise and initial weights fixed by the seed alone, the same
``History`` rows, checkpoints, divergence handling and counters. ``measure`` follows
``measure.measure``'s semantics (whole training set, eval mode, weights frozen, the run's own
precision) but walks the data in chunks, since a convolutional network's activations on a whole
data set rarely fit in memory at once; a unit is a channel, dead when its local derivative is 0
at every position of every example.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from relulab.data.prepared import Split
from relulab.nn import convnets, probes
from relulab.train.losses import per_example_cross_entropy, per_seed_cross_entropy
from relulab.train.seeding import NOISE_STREAM, generator

MEASURE_BATCH = 1024
# The per-layer results of ``measure_one``, stacked over seeds by ``measure``.
LAYER_METRICS = (
    "dead",
    "inactive",
    "dead_at_inference",
    "inactive_at_inference",
    "sparsity",
    "pre_activation_grad_rms",
)


class SeedModels(nn.Module):
    """One convolutional network per seed, all of one architecture (a ``core.SeedModel``).

    ``measure_batch`` is how many examples ``measure`` runs through a network at a time.
    """

    def __init__(
        self,
        models: list[nn.Module],
        generators: list[torch.Generator] | None = None,
        measure_batch: int = MEASURE_BATCH,
    ):
        super().__init__()
        self.models = nn.ModuleList(models)
        self.generators = list(generators or [])
        self.measure_batch = measure_batch

    @property
    def seeds(self) -> int:
        return len(self.models)

    @property
    def depth(self) -> int:
        """Number of activation layers (hidden "layers" of a study), the same for every seed."""
        return len(convnets.activation_modules(self.models[0]))

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def backward(self, x, y, index, alive) -> None:
        """Each seed's forward and backward pass in turn: one seed's graph in memory at a time."""
        for s, model in enumerate(self.models):
            logits = model(x[index[s]])
            loss = per_seed_cross_entropy(logits[None], y[index[s]][None])[0]
            alive[s] &= torch.isfinite(loss)
            torch.where(alive[s], loss, 0).backward()

    def hidden_grad_norms(self) -> torch.Tensor:
        return torch.stack(
            [
                torch.stack([torch.linalg.vector_norm(w.grad) for w in model.hidden_weights()])
                for model in self.models
            ],
            dim=1,
        )

    def counted_activations(self) -> list[tuple[nn.Module, int | None]]:
        return [
            (act, s)
            for s, model in enumerate(self.models)
            for act in convnets.activation_modules(model)
        ]

    def noise_generators(self) -> list[torch.Generator]:
        return self.generators

    def measure(self, data: Split) -> dict:
        return measure(self, data, self.measure_batch)


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
    measure_batch: int = MEASURE_BATCH,
) -> SeedModels:
    """The seeds' networks, initialised by seed alone; RReLU noise from each seed's own stream."""
    noise = (
        [generator(seed, NOISE_STREAM, device) for seed in seeds] if activation == "rrelu" else []
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
    return SeedModels(models, noise, measure_batch).to(device=device, dtype=dtype)


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


def _sweep(model: nn.Module, data: Split, batch: int, gradients: bool) -> dict:
    """The training set through ``model`` as it normalises now, ``batch`` examples at a time.

    Returns the summed loss and, per activation layer, dead/inactive channel masks, the count
    and number of exact-zero outputs and, with ``gradients``, the sum of squares of dL_i/dz
    (each example's own loss; examples are independent in eval mode).
    """
    n = data.x_train.shape[0]
    loss_sum = torch.zeros((), dtype=torch.float64, device=data.x_train.device)
    layers: list[dict] = []
    for start in range(0, n, batch):
        x, y = data.x_train[start : start + batch], data.y_train[start : start + batch]
        with torch.set_grad_enabled(gradients), _capturing(model) as captured:
            logits = model(x)
            losses = per_example_cross_entropy(logits[None], y[None])
            zs = [z for _, z, _ in captured]
            grads = torch.autograd.grad(losses.sum(), zs) if gradients else [None] * len(zs)
        with torch.no_grad():
            loss_sum += losses.detach().mean(dim=1)[0].double() * len(y)
            for layer, ((act, z, out), grad) in enumerate(zip(captured, grads, strict=True)):
                z, out = z.detach(), out.detach()
                here = {
                    "dead": probes.dead_mask_of(act, z, keep=(1,)),
                    "inactive": probes.inactive_mask(z),
                    "zeros": (out == 0).sum(),
                    "size": out.numel(),
                    "grad_squares": 0.0 if grad is None else grad.double().square().sum(),
                }
                if layer == len(layers):
                    layers.append(here)
                    continue
                seen = layers[layer]
                seen["dead"] &= here["dead"]
                seen["inactive"] &= here["inactive"]
                for key in ("zeros", "size", "grad_squares"):
                    seen[key] = seen[key] + here[key]
    return {"loss_sum": loss_sum, "layers": layers}


def measure_one(model: nn.Module, data: Split, batch: int = MEASURE_BATCH) -> dict:
    """One network's metrics on the whole training set and the test set, ``batch`` at a time.

    Returns scalars ``train_loss``, ``val_loss``, ``val_accuracy`` and, per activation layer in
    forward order, ``dead``/``inactive`` and ``dead_at_inference``/``inactive_at_inference``
    channel masks ``[channels]``, ``sparsity`` and ``pre_activation_grad_rms`` (as
    ``measure.measure``: batch norm with the whole training set's statistics, gathered chunk by
    chunk, for the training view; its running statistics at inference and for the losses).
    """
    was_training = model.training
    model.eval()
    try:
        n = data.x_train.shape[0]
        if probes.batch_norms(model):
            inference = _sweep(model, data, batch, gradients=False)

            def run(start: int, stop: int) -> None:
                model(data.x_train[start:stop])

            with probes.normalising_by_whole_set(model, run, n, batch):
                training = _sweep(model, data, batch, gradients=True)
        else:
            inference = training = _sweep(model, data, batch, gradients=True)
        with torch.no_grad():
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
    layers, at_inference = training["layers"], inference["layers"]
    return {
        "train_loss": inference["loss_sum"] / n,
        "val_loss": val_loss / n_test,
        "val_accuracy": correct.double() / n_test,
        "dead": [layer["dead"] for layer in layers],
        "inactive": [layer["inactive"] for layer in layers],
        "dead_at_inference": [layer["dead"] for layer in at_inference],
        "inactive_at_inference": [layer["inactive"] for layer in at_inference],
        "sparsity": [layer["zeros"].double() / layer["size"] for layer in layers],
        "pre_activation_grad_rms": [
            torch.as_tensor(layer["grad_squares"] / layer["size"]).sqrt() for layer in layers
        ],
    }


def measure(models: SeedModels, data: Split, batch: int = MEASURE_BATCH) -> dict:
    """``measure.measure``'s result for networks held one per seed (leading seed dimension)."""
    per_seed = [measure_one(model, data, batch) for model in models.models]
    out = {
        key: torch.stack([m[key] for m in per_seed])
        for key in ("train_loss", "val_loss", "val_accuracy")
    }
    for key in LAYER_METRICS:
        out[key] = [torch.stack(layer) for layer in zip(*(m[key] for m in per_seed), strict=True)]
    return out
