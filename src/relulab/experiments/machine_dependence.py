"""The bifurcation as a finding about the machine: two GEMM paths side by side, and its rates.

``side_by_side``: the bifurcation cells measured on the default GEMM path and on another
(``relulab.experiments.gemm_paths``), on the same initialisations, with how many
initialisations bifurcate on both. Which initialisations meet an exact zero is a property of
the bits the kernels compute, not of the network alone.

``rates``: per precision (and GEMM path), whether exact zeros arrive at one rate per
pre-activation in every cell (architecture) measured: conditional on the total count, counts
in cells with equal rates are multinomial with probabilities proportional to the cells'
exposures. Two cells get the exact conditional binomial test, more cells Pearson's chi-square
on counts against exposures. The pooled rate (Garwood interval) carried to the paper's
exposure rests on that assumption, and on the paper's setting (MNIST, raw inputs, a GPU) having
the same rate; the table says so in ``assumption``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from relulab.experiments import bifurcation, machine
from relulab.experiments.gemm_paths import DEFAULT
from relulab.tables.stats import garwood_interval

_ARCH = ["precision", "width", "depth"]
# A rate's group: a cell less its architecture.
_RATE_GROUP = ["gemm_path", *[c for c in bifurcation.CELL if c not in ("width", "depth")]]
ASSUMPTION = (
    "exact zeros arrive independently at one constant rate per pre-activation, the same in "
    "every cell of this precision (p_value tests this across the cells measured here) and at "
    "the paper's setting (MNIST, 3x256, a GPU); expected_fraction_at_paper = "
    "1 - exp(-pooled_rate x paper_exposure)"
)
_PAPER = bifurcation.PAPER_POINTS[0]
PAPER_EXPOSURE = _PAPER.pre_activations_per_init


def side_by_side(default: pd.DataFrame, other: pd.DataFrame, other_name: str) -> pd.DataFrame:
    """One row per cell and GEMM path (``gemm_path`` first, then ``bifurcation.table``'s
    columns, then ``differ_on_both``): the default path's per-init rows restricted to the
    cells and initialisations measured on the other path, and the other path's. Without
    other rows, the default path's cells alone."""
    if other.empty:
        return _with_path(bifurcation.table(default), DEFAULT).assign(differ_on_both=math.nan)
    measured = other[[*_ARCH, "init"]].drop_duplicates()
    same = default.merge(measured, on=[*_ARCH, "init"])
    both = same.merge(other[[*_ARCH, "init", "differ"]], on=[*_ARCH, "init"], suffixes=("", "_o"))
    both["on_both"] = both["differ"].astype(bool) & both["differ_o"].astype(bool)
    shared = both.groupby(_ARCH)["on_both"].sum().rename("differ_on_both").reset_index()
    table = pd.concat(
        [
            _with_path(bifurcation.table(same), DEFAULT),
            _with_path(bifurcation.table(other), other_name),
        ],
        ignore_index=True,
    )
    table = table.merge(shared, on=_ARCH, how="left")
    order = ["dataset", "inputs", "compare", "width", "depth", "batch_size", "precision"]
    return table.sort_values(order, kind="stable").reset_index(drop=True)


def _with_path(cells: pd.DataFrame, path: str) -> pd.DataFrame:
    return cells.assign(gemm_path=path)[["gemm_path", *cells.columns]]


def equal_rate_test(counts, exposures) -> tuple[float, int, float, str]:
    """(Pearson chi-square, degrees of freedom, p-value, test) of "every cell has the same
    Poisson rate" given each cell's count and exposure. Two cells: the p-value of the exact
    conditional binomial test; one cell or no count: nothing to test (p = 1 without counts)."""
    counts = np.asarray(counts, dtype=float)
    exposures = np.asarray(exposures, dtype=float)
    cells, total = len(counts), counts.sum()
    if cells < 2:
        return math.nan, 0, math.nan, "one cell: nothing to compare"
    if total == 0:
        return 0.0, cells - 1, 1.0, "no exact zero in any cell"
    expected = total * exposures / exposures.sum()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    if cells == 2:
        share = exposures[0] / exposures.sum()
        p = stats.binomtest(int(counts[0]), int(total), share).pvalue
        return chi2, 1, float(p), "exact conditional binomial"
    return chi2, cells - 1, float(stats.chi2.sf(chi2, cells - 1)), "Pearson chi-square"


def rates(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per precision and GEMM path (and dataset, inputs, compare, device, batch size):
    the equal-rate test across its cells, the pooled rate with its Garwood interval, and the
    fraction of initialisations it predicts at the paper's exposure (``ASSUMPTION``).

    ``cells``: rows of ``bifurcation.table`` (all initialisations of each cell), with a
    ``gemm_path`` column (the default path when absent)."""
    if "gemm_path" not in cells:
        cells = _with_path(cells, DEFAULT)
    paper = {p.precision: p.fraction_differ for p in bifurcation.PAPER_POINTS}
    rows = []
    for key, group in cells.groupby(_RATE_GROUP, sort=False):
        zeros = group["exact_zeros"].astype(int)
        exposure = group["pre_activations_per_init"] * group["inits"]
        chi2, dof, p_value, test = equal_rate_test(zeros, exposure)
        total, total_exposure = int(zeros.sum()), float(exposure.sum())
        rate = total / total_exposure
        low, high = garwood_interval(total, total_exposure)
        precision = group["precision"].iloc[0]
        rows.append(
            {
                **dict(zip(_RATE_GROUP, key, strict=True)),
                "cells": len(group),
                "architectures": ", ".join(
                    f"{d}x{w}" for w, d in zip(group["width"], group["depth"], strict=True)
                ),
                "exact_zeros": total,
                "pre_activations": total_exposure,
                "chi2": chi2,
                "dof": dof,
                "test": test,
                "p_value": p_value,
                "pooled_rate": rate,
                "rate_low": low,
                "rate_high": high,
                "paper_exposure": PAPER_EXPOSURE,
                "expected_fraction_at_paper": bifurcation.predicted_fraction(rate, PAPER_EXPOSURE),
                "expected_fraction_low": bifurcation.predicted_fraction(low, PAPER_EXPOSURE),
                "expected_fraction_high": bifurcation.predicted_fraction(high, PAPER_EXPOSURE),
                "paper_fraction": paper.get(precision, math.nan),
                "assumption": ASSUMPTION,
                **{c: group[c].iloc[0] for c in machine.COLUMNS if c in group},
            }
        )
    return pd.DataFrame(rows)
