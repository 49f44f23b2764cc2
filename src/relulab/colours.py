"""Each activation's colour, in grid order: the ReLU family warm, the smooth activations cool.

Shared by the figures (``relulab.figures.style``) and the MLflow runs (``mlflow.runColor``), and
kept out of both so that a training job takes the same colours without loading a plotting
library.
"""

# ColorBrewer RdYlBu/PuOr/BrBG hues, dark enough to read as thin lines on white.
COLOURS = {
    # ReLU family: warm.
    "relu": "#b2182b",
    "leaky_relu": "#e66101",
    "prelu": "#d6a000",
    "rrelu": "#8c510a",
    # Smooth: cool.
    "elu": "#1b7837",
    "softplus": "#01a09a",
    "gelu": "#2166ac",
    "sigmoid": "#762a83",
    "tanh": "#5e9ed6",
}
OTHER_COLOUR = "#555555"
