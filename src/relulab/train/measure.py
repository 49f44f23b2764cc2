"""What is measured after every epoch, with the weights frozen, on the whole training set and the
test set: losses, accuracy, dead and inactive units, sparsity and the backward signal at the
pre-activations (SCIENCE.md's definitions; ``relulab.nn.probes`` holds the unit masks).

``measure`` handles a ``SeedStack`` (all seeds' MLPs stacked); ``relulab.train.conv`` measures
models that hold one network per seed with the same semantics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from relulab.data.prepared import Split
from relulab.nn import probes
from relulab.nn.models import SeedStack
from relulab.train.losses import autocast, per_example_cross_entropy, per_seed_cross_entropy


def grad_rms(grad: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Root mean square of ``grad`` over ``dims``, as a float64 tensor.

    The norm of each row along the last of ``dims`` is taken in ``grad``'s own type (float32
    for 16-bit types; a few hundred terms each, relative error ~1e-7 in float32), and these
    rows' norms are combined in float64: about 20 times faster on one CPU thread than
    converting every element to float64 (``tests/test_measurement.py`` checks it against a
    float64 reference).
    """
    dims = tuple(sorted(d % grad.dim() for d in dims))
    n = math.prod(grad.shape[d] for d in dims)
    return rms_of_row_norms(row_norms(grad, dims[-1]), dims[:-1], n)


def row_norms(grad: torch.Tensor, dim: int) -> torch.Tensor:
    """The L2 norm along ``dim`` of ``grad`` (float32 for 16-bit types): ``grad_rms``'s rows."""
    if grad.dtype in (torch.float16, torch.bfloat16):
        grad = grad.float()
    return torch.linalg.vector_norm(grad, dim=dim)


def rms_of_row_norms(rows: torch.Tensor, dims: tuple[int, ...], n: int) -> torch.Tensor:
    """``grad_rms`` from its rows' norms: combined over ``dims`` in float64, over ``n`` values."""
    if dims:
        rows = torch.linalg.vector_norm(rows.double(), dim=dims)
    return rows.double() / math.sqrt(n)


def measure(stack: SeedStack, data: Split) -> dict[str, torch.Tensor]:
    """Per-seed metrics with frozen weights on the whole training set and on the test set.

    Returns tensors with a leading seed dimension: ``train_loss``, ``val_loss``,
    ``val_accuracy`` ``[S]`` and, per hidden layer (lists in forward order), ``dead``,
    ``inactive``, ``dead_at_inference``, ``inactive_at_inference`` masks ``[S, units]``,
    ``sparsity`` and ``pre_activation_grad_rms`` ``[S]``.

    Dead, inactive, sparsity and the gradient are measured on what training computes (batch
    norm with the whole training set's statistics, ``probes.normalising_by_whole_set``), in one
    forward pass and one backward pass to the pre-activations; the ``_at_inference`` masks and
    the losses use batch norm's running statistics. Without batch norm the two views are one
    pass. The gradient is that of each example's own cross-entropy (their sum, backpropagated
    with batch norm's statistics fixed), RMS over (example, unit). In mixed precision every
    forward pass runs under autocast, as training's does.
    """
    with autocast(getattr(stack, "autocast_dtype", None), data.x_train.device):
        return _measure(stack, data)


# Examples per pass of the measurement over the training set (models without batch norm, whose
# whole-set statistics need the whole set in one pass). Every quantity is per example, or a
# conjunction, count or sum of squares of per-example values combined exactly, so the numbers
# are those of one pass (``tests/test_measurement.py`` checks them bitwise); a layer's
# [S, ~512, width] tensors stay in the CPU's caches: 20-30 % faster than one pass over
# MNIST-1D's 4,000 examples with 4-16 members on one core, and memory no longer grows with the
# training set. The slices are of near-equal size, never a sliver of a few examples, which
# some matrix-product kernels round differently.
MEASURE_CHUNK = 512


def measurement_slices(n: int, chunk: int | None = None) -> list[tuple[int, int]]:
    """``n`` examples as (start, stop) slices of near-equal size, about ``chunk`` each."""
    chunk = MEASURE_CHUNK if chunk is None else chunk
    count = max(1, round(n / chunk))
    bounds = [n * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@dataclass
class _TrainingSetPass:
    """What one pass over a slice of the training set measures (per seed, in the slice)."""

    losses: torch.Tensor  # [S, examples] cross-entropy of each example
    dead: list[torch.Tensor]  # per hidden layer [S, units]: dead on every example of the slice
    inactive: list[torch.Tensor]
    zeros: list[torch.Tensor]  # per hidden layer [S]: activation outputs exactly 0 (int64)
    grad_rows: list[torch.Tensor]  # per hidden layer [S, examples]: norm of dL/dz over units


# The dimensions of a stacked layer's [seed, example, unit] tensors a unit's masks keep.
SEED_AND_UNIT = (0, 2)


def _training_set_pass(stack: SeedStack, x: torch.Tensor, y: torch.Tensor) -> _TrainingSetPass:
    """Forward and backward to the pre-activations on examples ``x`` (``[N, features]``)."""
    seeds = stack.seeds
    keep = SEED_AND_UNIT
    zs: list[torch.Tensor] = []
    hs: list[torch.Tensor] = []
    with torch.enable_grad():
        logits = stack(x.expand(seeds, *x.shape), pre_activations=zs, outputs=hs)
        losses = per_example_cross_entropy(logits, y.expand(seeds, -1))
        grads = torch.autograd.grad(losses.sum(), zs)
    with torch.no_grad():
        zs = [z.detach() for z in zs]
        return _TrainingSetPass(
            losses=losses.detach(),
            dead=[probes.dead_mask_of(a, z, keep) for a, z in zip(stack.acts, zs, strict=True)],
            inactive=[probes.inactive_mask(z, keep) for z in zs],
            zeros=[probes.zero_count(h.detach(), reduce=(1, 2)) for h in hs],
            grad_rows=[row_norms(g, 2) for g in grads],
        )


def _every(masks: Iterable[torch.Tensor]) -> torch.Tensor:
    """True where every mask is (a unit dead on every slice is dead on the whole set)."""
    masks = list(masks)
    result = masks[0]
    for mask in masks[1:]:
        result = result & mask
    return result


def _measure(stack: SeedStack, data: Split) -> dict[str, torch.Tensor]:
    was_training = stack.training
    stack.eval()
    seeds = stack.seeds
    keep = SEED_AND_UNIT
    n = data.x_train.shape[0]
    slices = [(0, n)] if len(stack.norms) else measurement_slices(n)
    try:
        with probes.normalising_by_whole_set(stack):
            parts = [
                _training_set_pass(stack, data.x_train[start:stop], data.y_train[start:stop])
                for start, stop in slices
            ]
        with torch.no_grad():
            dead, inactive, sparsity, rms = [], [], [], []
            for layer in range(len(parts[0].dead)):
                dead.append(_every(p.dead[layer] for p in parts))
                inactive.append(_every(p.inactive[layer] for p in parts))
                values = n * dead[layer].shape[1]  # examples x units
                zeros = sum(p.zeros[layer] for p in parts)
                sparsity.append(zeros.to(torch.float64) / values)
                rows = torch.cat([p.grad_rows[layer] for p in parts], dim=1)
                rms.append(rms_of_row_norms(rows, (1,), values))
            if len(stack.norms):
                x_train = data.x_train.expand(seeds, *data.x_train.shape)
                y_train = data.y_train.expand(seeds, -1)
                running: list[torch.Tensor] = []
                train_loss = per_seed_cross_entropy(stack(x_train, running), y_train)
                dead_inference = [
                    probes.dead_mask_of(a, z, keep)
                    for a, z in zip(stack.acts, running, strict=True)
                ]
                inactive_inference = [probes.inactive_mask(z, keep) for z in running]
            else:
                train_loss = torch.cat([p.losses for p in parts], dim=1).mean(dim=1)
                dead_inference, inactive_inference = dead, inactive
            val_logits = stack(data.x_test.expand(seeds, *data.x_test.shape))
            y_test = data.y_test.expand(seeds, -1)
            val_loss = per_seed_cross_entropy(val_logits, y_test)
            val_accuracy = (val_logits.argmax(dim=-1) == y_test).double().mean(dim=1)
    finally:
        stack.train(was_training)
    return {
        "train_loss": train_loss,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "dead": dead,
        "inactive": inactive,
        "dead_at_inference": dead_inference,
        "inactive_at_inference": inactive_inference,
        "sparsity": sparsity,
        "pre_activation_grad_rms": rms,
    }
