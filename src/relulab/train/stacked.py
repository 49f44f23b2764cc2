"""All seeds' MLPs as one model: ``StackedMLP`` (a ``relulab.nn.models.SeedStack`` with what the
training core asks of a model, ``relulab.train.core.SeedModel``) and ``build_stack``.
"""

from __future__ import annotations

import torch
from torch import nn

from relulab.data.prepared import Split
from relulab.nn.models import SeedStack, seeded_mlp
from relulab.nn.probes import nonzero_derivative_units
from relulab.train.losses import autocast, per_seed_cross_entropy
from relulab.train.measure import SEED_AND_UNIT, measure
from relulab.train.seeding import NOISE_STREAM, generator
from relulab.train.step_death import NonzeroDerivatives
from relulab.train.zeros import count_exact_zeros, may_hold_exact_zeros


class StackedMLP(SeedStack):
    """A ``SeedStack`` with what the training core asks of a model (``SeedModel``)."""

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    # (exact_zeros, live_zeros) while ``counting_exact_zeros_of`` counts this model's zeros.
    zero_counters: tuple[torch.Tensor, torch.Tensor] | None = None

    # The units with a non-zero local derivative while ``recording_nonzero_derivatives`` records.
    derivative_record: NonzeroDerivatives | None = None

    # Mixed precision: the type of the forward pass under ``torch.autocast`` (None: off).
    autocast_dtype: torch.dtype | None = None

    def backward(self, x, y, index, alive, loss_scale=None) -> None:
        # The exact zeros are counted here rather than by forward hooks: one check per step
        # for all layers instead of a hook and a read-back per layer (same counts).
        counting = self.zero_counters is not None
        recording = self.derivative_record is not None
        zs: list[torch.Tensor] | None = [] if counting or recording else None
        hs: list[torch.Tensor] | None = [] if counting or recording else None
        with autocast(self.autocast_dtype, x.device):
            losses = per_seed_cross_entropy(self(x[index], zs, hs), y[index])
        if counting and may_hold_exact_zeros(zs):
            for z, h in zip(zs, hs, strict=True):
                count_exact_zeros(z, h, *self.zero_counters)
        if recording:
            for layer, (act, z, h) in enumerate(zip(self.acts, zs, hs, strict=True)):
                live = nonzero_derivative_units(act, z, h, SEED_AND_UNIT)
                self.derivative_record.add(layer, live)
        alive &= torch.isfinite(losses)
        losses = torch.where(alive, losses, 0)
        if loss_scale is not None:
            losses = losses * loss_scale
        losses.sum().backward()

    def hidden_grad_norms(self) -> torch.Tensor:
        hidden = tuple(self.weights._parameters.values())[:-1]
        return torch.stack([torch.linalg.vector_norm(w.grad, dim=(1, 2)) for w in hidden])

    def counted_activations(self) -> list[tuple[nn.Module, int | None]]:
        return []  # counted and recorded in ``backward`` (``zero_counters``, ``derivative_record``)

    def noise_generators(self) -> list[torch.Generator]:
        return list(getattr(self.acts[0], "generators", None) or [])

    def measure(self, data: Split) -> dict:
        return measure(self, data)


def build_stack(
    seeds: list[int],
    in_features: int,
    classes: int,
    width: int,
    depth: int,
    activation: str,
    zero_grad: float | None,
    batch_norm: bool,
    init: str | list[str],
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> StackedMLP:
    """The seeds' MLPs, initialised by seed (and ``init``, one for all or one per seed) alone,
    stacked into one model."""
    inits = [init] * len(seeds) if isinstance(init, str) else list(init)
    models = [
        seeded_mlp(
            seed,
            in_features=in_features,
            width=width,
            depth=depth,
            classes=classes,
            activation=activation,
            zero_grad=zero_grad,
            batch_norm=batch_norm,
            init=member_init,
        )
        for seed, member_init in zip(seeds, inits, strict=True)
    ]
    noise = [generator(seed, NOISE_STREAM, device) for seed in seeds]
    stack = StackedMLP(models, activation, zero_grad, rrelu_generators=noise)
    return stack.to(device=device, dtype=dtype)
