"""Networks: the plain MLP, and the same MLP stacked over seeds so that S seeds train as one model.

``mlp`` builds the ordinary ``nn.Sequential`` a researcher would write. ``SeedStack`` holds the
parameters of S such MLPs stacked along a leading seed dimension and runs them with batched
matrix products; seed ``s`` of a stack computes exactly what ``mlp`` computes with that seed's
parameters (up to the summation order of a matrix product).
"""

from __future__ import annotations

import torch
from torch import nn

from relulab.nn import activations

INITS = ("default", "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform")
# The precisions of weights and arithmetic and their torch dtypes.
DTYPES = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
# Mixed precision as people train (``training.precision``): float32 master weights and data, the
# forward pass under ``torch.autocast`` in this type; float16 with dynamic loss scaling.
MIXED = {"mixed_float16": torch.float16, "mixed_bfloat16": torch.bfloat16}
TRAINING_PRECISIONS = (*DTYPES, *MIXED)


def weight_dtype(precision: str) -> torch.dtype:
    """The type of a network's weights and data for a training precision."""
    return torch.float32 if precision in MIXED else DTYPES[precision]


def mlp(
    in_features: int,
    width: int,
    depth: int,
    classes: int,
    activation: str,
    zero_grad: float | None = None,
    batch_norm: bool = False,
    init: str = "default",
) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units; Linear -> [BatchNorm1d] -> activation each."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; allowed: {', '.join(INITS)}")
    layers: list[nn.Module] = []
    features = in_features
    for _ in range(depth):
        linear = nn.Linear(features, width)
        initialise(linear, init)
        layers.append(linear)
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(activations.build(activation, zero_grad))
        features = width
    head = nn.Linear(features, classes)
    initialise(head, init)
    layers.append(head)
    return nn.Sequential(*layers)


def initialise(linear: nn.Linear | nn.Conv2d, init: str) -> None:
    """Re-draw a layer's weights; ``default`` keeps what ``nn.Linear``/``nn.Conv2d`` drew."""
    if init == "default":
        return
    options = {"nonlinearity": "relu"} if init.startswith("kaiming") else {}
    getattr(nn.init, f"{init}_")(linear.weight, **options)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def seeded_mlp(seed: int, **kwargs) -> nn.Sequential:
    """``mlp(**kwargs)`` with initial weights fixed by ``seed`` alone (not by the activation)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return mlp(**kwargs)


def hidden_linears(model: nn.Module) -> list[nn.Linear]:
    """The hidden ``nn.Linear`` layers of an MLP in forward order (the output layer excluded)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[:-1]


class StackedBatchNorm(nn.Module):
    """``nn.BatchNorm1d`` for each seed of a ``[seeds, batch, units]`` input."""

    batch_dims = (1,)  # the dimension its statistics average over (probes read it)

    def __init__(self, seeds: int, units: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(seeds, units))
        self.bias = nn.Parameter(torch.zeros(seeds, units))
        self.register_buffer("running_mean", torch.zeros(seeds, units))
        self.register_buffer("running_var", torch.ones(seeds, units))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            mean = x.mean(dim=1)
            var = x.var(dim=1, unbiased=False)
            with torch.no_grad():
                n = x.shape[1]
                unbiased = var * (n / max(n - 1, 1))
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight / torch.sqrt(var + self.eps)
        return (x - mean.unsqueeze(1)) * scale.unsqueeze(1) + self.bias.unsqueeze(1)


class SeedStack(nn.Module):
    """S MLPs of one architecture, parameters stacked along dim 0, run as one batched model.

    Inputs are ``[seeds, batch, in_features]``; outputs ``[seeds, batch, classes]``.
    """

    def __init__(
        self,
        models: list[nn.Sequential],
        activation: str,
        zero_grad: float | None,
        rrelu_generators: list[torch.Generator] | None = None,
    ):
        super().__init__()
        seeds = len(models)
        linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        norms = [[m for m in model if isinstance(m, nn.BatchNorm1d)] for model in models]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].weight.detach() for ls in linears]).clone())
            for i in range(len(linears[0]))
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].bias.detach() for ls in linears]).clone())
            for i in range(len(linears[0]))
        )
        self.norms = nn.ModuleList()
        for i in range(len(norms[0])):
            norm = StackedBatchNorm(seeds, norms[0][i].num_features, norms[0][i].eps)
            self.norms.append(norm)
        self.acts = nn.ModuleList()
        for i in range(self.depth):
            act = activations.build(
                activation,
                zero_grad,
                **({"seeds": seeds} if activation == "prelu" else {}),
                **({"generators": rrelu_generators} if activation == "rrelu" else {}),
            )
            if activation == "prelu":
                slopes = [[m for m in model if activations.is_activation(m)][i] for model in models]
                with torch.no_grad():
                    act.weight.copy_(torch.stack([slope.weight for slope in slopes]))
            self.acts.append(act)

    @property
    def depth(self) -> int:
        return len(self.weights) - 1

    @property
    def seeds(self) -> int:
        return self.weights[0].shape[0]

    def forward(
        self,
        x: torch.Tensor,
        pre_activations: list[torch.Tensor] | None = None,
        outputs: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits; appends each hidden layer's pre-activation to ``pre_activations`` and its
        activation output to ``outputs`` if given."""
        # The registered tensors themselves: indexing a ParameterList goes through string keys
        # and Module.__getattr__, a few microseconds a time, on every step.
        weights = tuple(self.weights._parameters.values())
        biases = tuple(self.biases._parameters.values())
        norms = tuple(self.norms._modules.values())
        h = x
        for i, act in enumerate(self.acts._modules.values()):
            z = torch.baddbmm(biases[i].unsqueeze(1), h, weights[i].transpose(1, 2))
            if norms:
                z = norms[i](z)
            if pre_activations is not None:
                pre_activations.append(z)
            h = act(z)
            if outputs is not None:
                outputs.append(h)
        return torch.baddbmm(biases[-1].unsqueeze(1), h, weights[-1].transpose(1, 2))

    def hidden_weights(self) -> list[nn.Parameter]:
        return list(self.weights[:-1])

    @torch.no_grad()
    def load_into(self, seed_index: int, model: nn.Sequential) -> nn.Sequential:
        """Copy seed ``seed_index``'s parameters into an ``mlp`` of the same shape."""
        linears = [m for m in model if isinstance(m, nn.Linear)]
        for i, linear in enumerate(linears):
            linear.weight.copy_(self.weights[i][seed_index])
            linear.bias.copy_(self.biases[i][seed_index])
        norms = [m for m in model if isinstance(m, nn.BatchNorm1d)]
        for norm, stacked in zip(norms, self.norms, strict=True):
            norm.weight.copy_(stacked.weight[seed_index])
            norm.bias.copy_(stacked.bias[seed_index])
            norm.running_mean.copy_(stacked.running_mean[seed_index])
            norm.running_var.copy_(stacked.running_var[seed_index])
        acts = [m for m in model if activations.is_activation(m)]
        for act, stacked in zip(acts, self.acts, strict=True):
            if hasattr(act, "weight") and hasattr(stacked, "weight"):
                act.weight.copy_(stacked.weight[seed_index])
        return model
