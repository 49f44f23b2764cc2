"""How numbers read in the findings: percentages, intervals, multiples, lists.

Fractions are shown with intervals clipped to [0, 1]: a mean over a few seeds with a Student-t
half-width can reach below 0 or above 1, which a fraction cannot.
"""

from __future__ import annotations

import math


def finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def pct(value: float, digits: int = 1) -> str:
    """A percentage; one that rounds to 0 but is not 0 keeps two significant digits."""
    if not finite(value):
        return "n/a"
    shown = f"{100 * value:.{digits}f}"
    if value != 0 and float(shown) == 0:
        shown = f"{100 * value:.2g}"
    return f"{shown} %"


def pct_interval(low: float, high: float, digits: int = 1) -> str:
    """``[a, b]`` in percent, clipped to [0, 100]."""
    if not (finite(low) and finite(high)):
        return "(no interval)"
    low, high = max(0.0, float(low)), min(1.0, float(high))
    return f"[{100 * low:.{digits}f}, {100 * high:.{digits}f}]"


def pct_ci(mean: float, half: float) -> str:
    """A fraction and its 95 % interval, the interval clipped to [0, 1]."""
    if not finite(half):
        return f"{pct(mean)} (one seed, no interval)" if finite(mean) else pct(mean)
    return f"{pct(mean)} {pct_interval(mean - half, mean + half)}"


def num(value: float, digits: int = 3) -> str:
    if not finite(value):
        return "n/a"
    return f"{float(value):.{digits}g}"


def ratio(value: float) -> str:
    """A multiple such as ``1.3×`` or ``45×``."""
    if not finite(value):
        return "n/a"
    if value < 10:
        return f"{value:.2f}×"
    return f"{value:.0f}×" if value < 10_000 else f"{value:.1e}×"


def gm(mean: float, low: float, high: float) -> str:
    """A geometric mean with its 95 % interval, e.g. ``0.012 [0.008, 0.018]``."""
    if not finite(mean):
        return "n/a"
    if not (finite(low) and finite(high)):
        return f"{num(mean, 2)} (one seed, no interval)"
    return f"{num(mean, 2)} [{num(low, 2)}, {num(high, 2)}]"


def hidden(depth: int) -> str:
    return f"{int(depth)} hidden layer" + ("" if int(depth) == 1 else "s")


def points(count: int) -> str:
    return f"{count} grid point" + ("" if count == 1 else "s")


def millions(count: float) -> str:
    """A count of pre-activations: ``46.1 M`` or ``4.4 G``."""
    if count >= 1e9:
        return f"{count / 1e9:.3g} G"
    return f"{count / 1e6:.3g} M"


def listing(items) -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
