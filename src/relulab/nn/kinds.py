"""The activations' names and which of them have a kink at 0.

Kept apart from ``relulab.nn.activations`` (which imports torch) so that the grid, and the
workflow that expands it while parsing, can tell kinked from smooth activations without
importing torch.
"""

KINKED = ("relu", "leaky_relu", "prelu", "rrelu")
SMOOTH = ("elu", "softplus", "gelu", "sigmoid", "tanh")
ACTIVATIONS = KINKED + SMOOTH


def is_kinked(name: str) -> bool:
    return name in KINKED
