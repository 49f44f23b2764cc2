"""Dead over an epoch's training steps: the step-level definition of a dead unit, beside the
epoch-end snapshot one of ``relulab.train.measure``.

A unit is dead over an epoch when its local derivative was exactly 0 on every example of every
training minibatch of that epoch, as the training forward pass computed it (the weights of each
step, batch norm with the minibatch's statistics). Such a unit passed no gradient to its
incoming weights during the whole epoch. A unit dead at an epoch-end snapshot may have been
alive during the steps before it, and its weights may have changed while counted dead.

``NonzeroDerivatives`` holds, per hidden layer, an OR over the epoch's steps of "some example had
a non-zero local derivative" (``probes.nonzero_derivative_units``: one max reduction per ReLU
layer and step, nothing read back from the device); ``recording_nonzero_derivatives`` fills it
while a model trains. The training core turns its complement, once per epoch, into the layer
rows' ``step_*`` columns (``relulab.train.rows``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from relulab.nn import probes

if TYPE_CHECKING:
    from relulab.train.core import SeedModel


class NonzeroDerivatives:
    """Per hidden layer, ``[seeds, units]``: True where the unit's local derivative was non-zero
    on some example of some step recorded so far. A layer's mask is made at its first step."""

    def __init__(self, seeds: int, depth: int):
        self.seeds = seeds
        self.layers: list[torch.Tensor | None] = [None] * depth

    def add(self, layer: int, live: torch.Tensor, seed: int | None = None) -> None:
        """Add one call's ``live`` units: ``[seeds, units]``, or ``[units]`` of seed ``seed``."""
        mask = self.layers[layer]
        if mask is None:
            units = live.shape[-1] if seed is None else live.numel()
            mask = torch.zeros(self.seeds, units, dtype=torch.bool, device=live.device)
            self.layers[layer] = mask
        if seed is None:
            mask |= live
        else:
            mask[seed] |= live.reshape(-1)

    def dead(self) -> list[torch.Tensor] | None:
        """Per hidden layer, the units dead over every step recorded; None if a layer had none."""
        if any(mask is None for mask in self.layers):
            return None
        return [~mask for mask in self.layers]


@contextmanager
def recording_nonzero_derivatives(model: SeedModel, record: NonzeroDerivatives) -> Iterator[None]:
    """While inside, every training forward pass of ``model`` adds its units with a non-zero
    local derivative to ``record``.

    A model with ``derivative_record`` (``StackedMLP``) records its own while inside; for any
    other, a forward hook on each activation of ``counted_activations`` (each seed's activations
    in forward order, the channel as the unit) records it.
    """
    if hasattr(model, "derivative_record"):
        model.derivative_record = record
        try:
            yield
        finally:
            model.derivative_record = None
        return
    with ExitStack() as hooks:
        layers: dict[int | None, int] = {}
        for act, seed in model.counted_activations():
            layer = layers.get(seed, 0)
            layers[seed] = layer + 1
            handle = act.register_forward_hook(_recorder(record, layer, seed))
            hooks.callback(handle.remove)
        yield


def _recorder(record: NonzeroDerivatives, layer: int, seed: int | None):
    """A forward hook that adds one activation call's live units (dim 1: the unit or channel;
    with ``seed=None``, dim 0 the seed and dim 2 the unit) to ``record``."""
    keep = (1,) if seed is not None else (0, 2)

    def add(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not output.requires_grad:
            return  # not a training step (no graph, no gradient to pass)
        record.add(layer, probes.nonzero_derivative_units(module, inputs[0], output, keep), seed)

    return add
