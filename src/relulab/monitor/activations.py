"""Which modules of a user's network the monitor measures: its activation modules.

The monitor sees activations through module hooks, so it sees only activations that are
modules. An activation called as a function inside ``forward`` (``F.relu(x)``, ``x.relu()``,
``torch.sigmoid(x)``) has no module and no hook: give it one (``self.act = nn.ReLU()`` in
``__init__``, ``self.act(x)`` in ``forward``) to have it measured.
"""

from __future__ import annotations

from torch import nn

from relulab.nn.activations import ACTIVATION_TYPES

# PyTorch's ReLU family and smooth activations, and relulab's zero-gradient activations.
MONITORED_TYPES: tuple[type[nn.Module], ...] = tuple(
    dict.fromkeys(
        (
            *ACTIVATION_TYPES,
            nn.ReLU,
            nn.ReLU6,
            nn.LeakyReLU,
            nn.PReLU,
            nn.RReLU,
            nn.ELU,
            nn.SELU,
            nn.CELU,
            nn.GELU,
            nn.SiLU,
            nn.Mish,
            nn.Softplus,
            nn.Sigmoid,
            nn.Tanh,
        )
    )
)

FUNCTIONAL_HINT = (
    "activations called as functions (F.relu(x), x.relu(), torch.tanh(x)) have no module and "
    "are invisible to the monitor's hooks: make them modules (self.act = nn.ReLU() in "
    "__init__, self.act(x) in forward)"
)


class NoActivationsError(ValueError):
    """The model has no activation module the monitor can hook."""


def activation_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's activation modules with their qualified names, in registration order."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, MONITORED_TYPES)]
    if not found:
        kinds = ", ".join(sorted({t.__name__ for t in MONITORED_TYPES}))
        raise NoActivationsError(
            f"{type(model).__name__} has no activation module ({kinds}); {FUNCTIONAL_HINT}"
        )
    return found
