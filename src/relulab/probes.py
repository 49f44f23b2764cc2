"""Dead, inactive, revived and sparse units: the definitions of SCIENCE.md, in one place.

Every probe runs on a whole data set with the weights frozen (eval mode, no parameter update),
in the model's own dtype. A *unit* is a hidden neuron of an MLP or a channel of a convolution.

- dead: its local derivative f'(z) is exactly 0 on every example (and every position);
- inactive: z <= 0 on every example;
- revived: dead at an earlier measurement and not dead now;
- permanently dead: dead at every measurement since it first died;
- sparsity: fraction of (example, unit) activation outputs exactly equal to 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from relulab.activations import is_activation


def local_derivative(activation: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """f'(z) elementwise, exactly as the activation's backward pass computes it."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        out = activation(z)
        (derivative,) = torch.autograd.grad(out, z, torch.ones_like(out))
    return derivative


def _all_except(mask: torch.Tensor, keep: tuple[int, ...]) -> torch.Tensor:
    """Reduce a boolean mask with ``all`` over every dimension not in ``keep``."""
    dims = tuple(d for d in range(mask.dim()) if d not in keep)
    return mask.all(dim=dims) if dims else mask


def dead_mask(derivative: torch.Tensor, keep: tuple[int, ...] = (1,)) -> torch.Tensor:
    """True where f'(z) == 0 on every example; ``keep`` are the unit (and seed) dimensions."""
    return _all_except(derivative == 0, keep)


def inactive_mask(z: torch.Tensor, keep: tuple[int, ...] = (1,)) -> torch.Tensor:
    """True where z <= 0 on every example; ``keep`` are the unit (and seed) dimensions."""
    return _all_except(z <= 0, keep)


def sparsity(outputs: torch.Tensor, reduce: tuple[int, ...] | None = None) -> torch.Tensor:
    """Fraction of activation outputs exactly 0 (over ``reduce`` dims, all by default)."""
    zeros = (outputs == 0).to(torch.float64)
    return zeros.mean() if reduce is None else zeros.mean(dim=reduce)


def pre_activations(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
    """Each activation module of ``model`` with its input on ``x``, in forward order.

    The model runs in eval mode without gradients, so weights are frozen and batch norm uses
    its running statistics; the model's training flag is restored afterwards.
    """
    captured: list[tuple[nn.Module, torch.Tensor]] = []

    def capture(module: nn.Module, inputs: tuple[torch.Tensor, ...], _output) -> None:
        captured.append((module, inputs[0].detach()))

    handles = [m.register_forward_hook(capture) for m in model.modules() if is_activation(m)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return captured


def dead_units(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """One boolean mask per hidden layer, in forward order: True where the unit is dead on x."""
    was_training = model.training
    model.eval()
    try:
        return [dead_mask(local_derivative(act, z)) for act, z in pre_activations(model, x)]
    finally:
        model.train(was_training)


def inactive_units(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """One boolean mask per hidden layer, in forward order: True where the unit is inactive."""
    return [inactive_mask(z) for _, z in pre_activations(model, x)]


@dataclass
class DeathHistory:
    """Per-unit death state carried from one measurement to the next.

    Masks have any shape (for example ``[seeds, units]``); each call to ``update`` takes the
    dead mask of the newest measurement and returns the unit-level dynamics at that time.
    """

    ever_dead: torch.Tensor | None = None
    permanently_dead: torch.Tensor | None = None

    def update(self, dead: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.ever_dead is None:
            previously_dead = torch.zeros_like(dead)
            permanent = dead.clone()
        else:
            previously_dead = self.ever_dead
            # Permanent: dead now, and either dead at every measurement since first dying,
            # or dying for the first time now.
            permanent = dead & (self.permanently_dead | ~previously_dead)
        self.ever_dead = previously_dead | dead
        self.permanently_dead = permanent
        return {
            "dead": dead,
            "ever_dead": self.ever_dead,
            "revived": previously_dead & ~dead,
            "permanently_dead": permanent,
        }

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {"ever_dead": self.ever_dead, "permanently_dead": self.permanently_dead}

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        self.ever_dead = state["ever_dead"]
        self.permanently_dead = state["permanently_dead"]
