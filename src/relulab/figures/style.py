"""The one look of relulab's figures: colours, line styles, order, bands and saving.

A reader who learns in one figure that ReLU is dark red must find it dark red in the next, so
every figure takes its colours, dashes, markers and legend order from here:

- each activation has one colour: the ReLU family (relu, leaky_relu, prelu, rrelu) warm, the
  smooth activations (elu, softplus, gelu, sigmoid, tanh) cool;
- the value used for f'(0) is the line style and marker, never the colour, so that the f'(0)
  twins of one activation share its colour and stay visible when they coincide (a solid line
  with filled circles under a dashed one with open squares);
- variants are listed in grid order: activations as in the schema, then f'(0) ascending;
- a line that shows a mean over seeds carries its 95 % interval (``lines`` draws the band).

Variants are the labels of ``relulab.tables.summary.variant_label`` (``relu (f'(0)=0)``,
``tanh``) and of the cost benchmark (``torch.relu`` for PyTorch's own operator).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from relulab.colours import COLOURS, OTHER_COLOUR  # noqa: E402

ACTIVATION_ORDER = tuple(COLOURS)
# f'(0) -> (dashes, marker, filled): the twins differ in style, never in colour.
ZERO_GRAD_STYLES = {
    0.0: ("", "o", True),
    1.0: ((4, 2), "s", False),
    0.5: ((1, 1.5), "^", False),
}
OTHER_ZERO_GRAD = ((5, 1.5, 1, 1.5), "D", False)
SMOOTH_STYLE = ("", "o", True)
TORCH_OWN_STYLE = ((1, 1), "v", True)
# Colours of what is not an activation: measures within one variant, and layer groups.
MEASURE_COLOURS = {
    "dead now": "#969696",
    "revived": "#f4a582",
    "permanently dead": "#000000",
    "interval": "#000000",
}
LAYER_COLOURS = ("#4d4d4d", "#bababa")

# ``relu (f'(0)=1)``, ``tanh``, ``torch.relu``; settings that vary follow a bar (``| adam``).
_VARIANT = re.compile(
    r"^(?P<own>torch\.)?(?P<activation>[a-z_0-9]+)(?: \(f'\(0\)=(?P<zg>[^)]+)\))?"
    r"(?: \| (?P<setting>.+))?$"
)

sns.set_theme(context="notebook", style="whitegrid")


@dataclass(frozen=True)
class Variant:
    """An activation variant as the figures see it."""

    label: str
    activation: str
    zero_grad: float | None
    torch_own: bool = False


def variant(label: str) -> Variant:
    """Parse a variant label (``relu (f'(0)=1)``, ``tanh``, ``torch.relu``)."""
    match = _VARIANT.match(str(label))
    if match is None:
        return Variant(str(label), str(label), None)
    # ``f'(0)=0, 0.5, 1 identical``: bitwise twins drawn once, in the style of the first value.
    first = match["zg"].split(",")[0].split()[0] if match["zg"] is not None else None
    zero_grad = float(first) if first is not None else None
    return Variant(str(label), match["activation"], zero_grad, bool(match["own"]))


def learning_rate_colours(rates) -> dict:
    """``{lr: colour}``, light grey to black as the rate grows: a quantity, never one of the
    activations' colours (which mean an activation in every figure)."""
    rates = sorted(set(rates))
    shades = sns.color_palette("Greys", len(rates) + 2)[2:]
    return dict(zip(rates, shades, strict=True))


def zero_grad_legend_handles(labels) -> list[Line2D]:
    """Neutral (grey) legend entries for the f'(0) line styles used by ``labels``; the colour
    says the activation, named in each panel's title."""
    seen = {}
    for label in order(labels):
        parsed = variant(label)
        if parsed.zero_grad is None:
            key, text = "smooth", "no f'(0) (smooth activation)"
        else:
            key = f"{parsed.zero_grad:g}"
            text = f"f'(0)={parsed.zero_grad:g}"
        if key in seen:
            continue
        kwargs = line_kwargs(label)
        kwargs.update(color=OTHER_COLOUR, label=text)
        seen[key] = Line2D([], [], **kwargs)
    ascending = sorted(seen, key=lambda key: math.inf if key == "smooth" else float(key))
    handles = [seen[key] for key in ascending]
    if any("identical" in str(label) for label in labels):
        handles.append(
            Line2D([], [], color="none", label="a, b identical: bitwise\nthe same runs, drawn once")
        )
    return handles


def sequential(count: int) -> list:
    """``count`` colours in order, for a quantity rather than an activation (e.g. widths)."""
    return sns.color_palette("viridis_r", count)


def colour(label: str) -> str:
    """The colour of a variant: its activation's, whatever its f'(0)."""
    return COLOURS.get(variant(label).activation, OTHER_COLOUR)


def _style(label: str) -> tuple:
    parsed = variant(label)
    if parsed.torch_own:
        return TORCH_OWN_STYLE
    if parsed.zero_grad is None:
        return SMOOTH_STYLE
    return ZERO_GRAD_STYLES.get(parsed.zero_grad, OTHER_ZERO_GRAD)


def line_kwargs(label: str, markers: bool = True) -> dict:
    """Keyword arguments of ``Axes.plot`` for a variant's line."""
    dashes, marker, filled = _style(label)
    kwargs = {"color": colour(label), "label": str(label), "linewidth": 1.6}
    if dashes:
        kwargs["dashes"] = dashes
    if markers:
        # Open markers a size larger, so that a twin's filled marker shows inside them.
        kwargs.update(marker=marker, markersize=4.5 if filled else 6.5, markeredgewidth=1.2)
        if not filled:
            kwargs["markerfacecolor"] = "none"
    return kwargs


def _order_key(label: str) -> tuple:
    parsed = variant(label)
    rank = ACTIVATION_ORDER.index(parsed.activation) if parsed.activation in COLOURS else 99
    zero_grad = -1.0 if parsed.zero_grad is None else parsed.zero_grad
    return (rank, not parsed.torch_own, zero_grad, parsed.label)


def order(labels) -> list[str]:
    """Distinct variant labels in grid order: activation as in the schema, then f'(0)."""
    return sorted({str(label) for label in labels}, key=_order_key)


def palette(labels) -> dict[str, str]:
    """``{variant: colour}`` for seaborn's ``palette=``."""
    return {label: colour(label) for label in order(labels)}


def legend_handles(labels, markers: bool = True) -> list[Line2D]:
    """One legend entry per variant, in grid order, drawn as its lines are."""
    return [Line2D([], [], **line_kwargs(label, markers)) for label in order(labels)]


def legend(figure_or_axes, labels, markers: bool = True, **kwargs):
    """The variants' legend, titled "activation", in grid order, right of the plot by default."""
    handles = legend_handles(labels, markers)
    kwargs = {"title": "activation", "loc": "center left", "bbox_to_anchor": (1.0, 0.5), **kwargs}
    return figure_or_axes.legend(handles=handles, labels=[h.get_label() for h in handles], **kwargs)


def colour_tick_labels(labels) -> None:
    """Colour axis tick labels that name variants (heatmap rows, bar charts) as their lines."""
    for text in labels:
        text.set_color(colour(text.get_text()))


def mean_band(values) -> tuple[float, float, float]:
    """Mean and the bounds of its Student-t 95 % interval over seeds (bounds NaN for n < 2)."""
    from relulab.tables.summary import mean_ci95

    mean, half = mean_ci95(values)
    return mean, mean - half, mean + half


def lines(ax, data: pd.DataFrame, x: str, y: str, markers: bool = True) -> list[str]:
    """One line per variant of ``data``: the mean of ``y`` over seeds at each ``x``, with the
    95 % interval as a band. Returns the variants drawn, in grid order."""
    drawn = order(data["variant"].unique())
    for label in drawn:
        part = data[data["variant"] == label]
        stats = [(at, *mean_band(group[y])) for at, group in part.groupby(x, sort=True)]
        stats = [row for row in stats if math.isfinite(row[1])]
        if not stats:
            continue
        xs, means, lows, highs = zip(*stats, strict=True)
        kwargs = line_kwargs(label, markers)
        ax.plot(xs, means, **kwargs)
        ax.fill_between(xs, lows, highs, color=kwargs["color"], alpha=0.15, linewidth=0)
    return drawn


def save(figure, path: str | Path) -> None:
    """Write ``path`` (PNG) and the same figure as SVG beside it, and close the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=130, bbox_inches="tight")
    figure.savefig(path.with_suffix(".svg"), bbox_inches="tight")
    plt.close(figure)
