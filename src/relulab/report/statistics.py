"""The statistics the claims rest on, beyond the tables' own (``relulab.tables.stats``).

- Fractions pooled over counts (units, runs, initialisations) get a Wilson interval.
- Means over seeds get a Student-t interval; for a fraction it is clipped to [0, 1].
- Several claims in one table: Holm's step-down adjustment of their p-values.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from relulab.tables.stats import mean_ci95, wilson_interval

ALPHA = 0.05

__all__ = ["ALPHA", "holm", "mean_ci95", "seed_interval", "wilson_interval"]


def seed_interval(values, fraction: bool = False) -> tuple[float, float, float, int]:
    """(mean, low, high, n) over the finite ``values`` (one per seed), Student t 95 %; a
    fraction's interval is clipped to [0, 1]; no interval (NaN) for fewer than two."""
    values = np.asarray(list(values), dtype=float)
    values = values[np.isfinite(values)]
    mean, half = mean_ci95(values)
    low, high = mean - half, mean + half
    if fraction and math.isfinite(half):
        low, high = max(0.0, low), min(1.0, high)
    return mean, low, high, len(values)


def one_sided_t(values, threshold: float, above: bool = True) -> float:
    """p-value of a one-sample t test of mean > ``threshold`` (``above``) or < it; NaN for
    fewer than two values; 0 or 1 when the values do not vary."""
    values = np.asarray(list(values), dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return math.nan
    if np.allclose(values, values[0], rtol=1e-12, atol=0):
        mean = values.mean()
        return 0.0 if (mean > threshold if above else mean < threshold) else 1.0
    result = stats.ttest_1samp(values, threshold, alternative="greater" if above else "less")
    return float(result.pvalue)


def larger_than(a, b) -> float:
    """p-value of a one-sided Mann-Whitney test that ``a`` tends to exceed ``b``; NaN when
    either is empty."""
    a = np.asarray(list(a), dtype=float)
    b = np.asarray(list(b), dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return math.nan
    return float(stats.mannwhitneyu(a, b, alternative="greater").pvalue)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (``None`` and NaN stay as they are: no test)."""
    tested = [(p, i) for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    tested.sort()
    adjusted: list[float | None] = list(p_values)
    m, running = len(tested), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
