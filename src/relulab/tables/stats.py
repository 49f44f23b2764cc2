"""The intervals relulab's tables report, in one place.

SCIENCE.md fixes which interval goes with which kind of number: a fraction gets a Wilson
interval, the rate of a rare event a Poisson (Garwood) interval, a mean over seeds a Student-t
interval. Every table imports them from here.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; ``(nan, nan)`` for no trials.

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or n
    successes, which is where bifurcation fractions sit (0 % in float64, 100 % in float16).
    """
    if trials <= 0:
        return math.nan, math.nan
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], not {successes}")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At 0 and n successes the bounds are exactly 0 and 1; spare them the rounding.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def garwood_interval(
    events: int, exposure: float = 1.0, confidence: float = 0.95
) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson rate: ``events`` observed in ``exposure`` trials.

    Bounds are chi-square quantiles, ``chi2(a/2; 2k) / 2T`` and ``chi2(1 - a/2; 2k + 2) / 2T``;
    with no events the lower bound is 0 and the upper one is the rate that would make seeing
    none a 2.5 % event (3.69 / T at 95 %). Coverage is at least ``confidence`` for every rate,
    which is what a rate estimated from a handful of exact zeros needs. ``(nan, nan)`` when
    there is no exposure.
    """
    if exposure <= 0:
        return math.nan, math.nan
    if events < 0:
        raise ValueError(f"events must be >= 0, not {events}")
    alpha = 1 - confidence
    low = 0.0 if events == 0 else float(stats.chi2.ppf(alpha / 2, 2 * events)) / 2
    high = float(stats.chi2.ppf(1 - alpha / 2, 2 * events + 2)) / 2
    return low / exposure, high / exposure


def mean_ci95(values) -> tuple[float, float]:
    """Mean and half-width of a Student-t 95 % interval over seeds (NaN half-width for n < 2)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan
    half = float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return mean, half
