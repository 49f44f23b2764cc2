"""Dead, inactive, revived and sparse units: the definitions of docs/definitions.rst, in code.

Every probe runs on a whole data set with the weights frozen (eval mode, no parameter update),
in the model's own dtype. A *unit* is a hidden neuron of an MLP or a channel of a convolution.

- dead: its local derivative f'(z) is exactly 0 on every example (and every position);
- inactive: z <= 0 on every example;
- revived: dead at an earlier measurement and not dead now;
- permanently dead: dead at every measurement since it first died;
- sparsity: fraction of (example, unit) activation outputs exactly equal to 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from relulab.nn.activations import is_activation

# Units by cause of death, as fractions of a layer's units in layers.csv: born dead (dead at the
# first measurement) or died in training, and of each the revived and the permanently dead.
CAUSE_COLUMNS = (
    "born_dead",
    "born_dead_revived",
    "born_dead_permanent",
    "died_in_training",
    "died_in_training_revived",
    "died_in_training_permanent",
)


def local_derivative(activation: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """f'(z) elementwise, exactly as the activation's backward pass computes it."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        out = activation(z)
        # Upstream gradient 1 everywhere, as a broadcast scalar rather than a filled tensor.
        ones = torch.ones((), dtype=out.dtype, device=out.device).expand_as(out)
        (derivative,) = torch.autograd.grad(out, z, ones)
    return derivative


# The probes below reduce with max and count with sums of 0/1 values rather than building
# boolean masks: on CPUs, comparisons that write boolean tensors cost several times the
# arithmetic kernels (about 3 ns an element against 0.2 for a ReLU), and these run on every
# element of a layer's pre-activations on the whole training set. Max reductions propagate
# NaN, so a NaN anywhere makes a unit neither dead nor inactive, as the comparisons do.


def _reduced(x: torch.Tensor, keep: tuple[int, ...]) -> tuple[int, ...]:
    """The dimensions of ``x`` not in ``keep``."""
    return tuple(d for d in range(x.dim()) if d not in keep)


def dead_mask(derivative: torch.Tensor, keep: tuple[int, ...] = (1,)) -> torch.Tensor:
    """True where f'(z) == 0 on every example; ``keep`` are the unit (and seed) dimensions."""
    dims = _reduced(derivative, keep)
    if not dims or derivative.numel() == 0:
        return (derivative == 0).all(dim=dims) if dims else derivative == 0
    return derivative.abs().amax(dim=dims) == 0


def inactive_mask(z: torch.Tensor, keep: tuple[int, ...] = (1,)) -> torch.Tensor:
    """True where z <= 0 on every example; ``keep`` are the unit (and seed) dimensions."""
    dims = _reduced(z, keep)
    if not dims or z.numel() == 0:
        return (z <= 0).all(dim=dims) if dims else z <= 0
    return z.amax(dim=dims) <= 0


def nonzero(x: torch.Tensor) -> torch.Tensor:
    """1 where ``x != 0`` (NaN and infinities included), 0 where ``x == 0``; ``x``'s dtype."""
    # torch.sign(NaN) is 0, so NaN becomes 1 first.
    return x.nan_to_num(nan=1.0).sign_().abs_()


def count(ones: torch.Tensor, dim: tuple[int, ...] | None = None) -> torch.Tensor:
    """The exact number of ones in a tensor of 0s and 1s (over ``dim``, all by default), int64."""
    n = ones.numel() if dim is None else math.prod(ones.shape[d] for d in dim)
    # Sums of 0/1 values are exact in float32 up to 2**24 terms (float16 and bfloat16 are not).
    exact = torch.float32 if n <= 2**24 and ones.dtype != torch.float64 else torch.float64
    total = ones.sum(dtype=exact) if dim is None else ones.sum(dim=dim, dtype=exact)
    return total.to(torch.int64)


def sparsity(outputs: torch.Tensor, reduce: tuple[int, ...] | None = None) -> torch.Tensor:
    """Fraction of activation outputs exactly 0 (over ``reduce`` dims, all by default)."""
    if not outputs.is_floating_point():
        zeros = (outputs == 0).to(torch.float64)
        return zeros.mean() if reduce is None else zeros.mean(dim=reduce)
    n = outputs.numel() if reduce is None else math.prod(outputs.shape[d] for d in reduce)
    return (n - count(nonzero(outputs), reduce)).to(torch.float64) / n


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
    dead mask of the newest measurement and returns the unit-level dynamics at that time. The
    first measurement (the untrained network) fixes which units were *born dead*; every other
    unit that is ever dead *died in training*. The two have different causes (initialisation
    against learning rate), so revival and permanence are also returned per cause.
    """

    ever_dead: torch.Tensor | None = None
    permanently_dead: torch.Tensor | None = None
    born_dead: torch.Tensor | None = None

    def update(self, dead: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.ever_dead is None:
            previously_dead = torch.zeros_like(dead)
            permanent = dead.clone()
            self.born_dead = dead.clone()
        else:
            previously_dead = self.ever_dead
            # Permanent: dead now, and either dead at every measurement since first dying,
            # or dying for the first time now.
            permanent = dead & (self.permanently_dead | ~previously_dead)
        self.ever_dead = previously_dead | dead
        self.permanently_dead = permanent
        revived = previously_dead & ~dead
        born = self.born_dead
        return {
            "dead": dead,
            "ever_dead": self.ever_dead,
            "revived": revived,
            "permanently_dead": permanent,
            "born_dead": born,
            "born_dead_revived": revived & born,
            "born_dead_permanent": permanent & born,
            "died_in_training": self.ever_dead & ~born,
            "died_in_training_revived": revived & ~born,
            "died_in_training_permanent": permanent & ~born,
        }

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {
            "ever_dead": self.ever_dead,
            "permanently_dead": self.permanently_dead,
            "born_dead": self.born_dead,
        }

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        self.ever_dead = state["ever_dead"]
        self.permanently_dead = state["permanently_dead"]
        # A checkpoint from before the split by cause: no unit counts as born dead.
        born = state.get("born_dead")
        if born is None and self.ever_dead is not None:
            born = torch.zeros_like(self.ever_dead)
        self.born_dead = born
