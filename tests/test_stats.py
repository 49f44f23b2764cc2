"""The intervals every table uses: Wilson, Garwood (exact Poisson) and Student t."""

import math

import pytest
from scipy import stats as scipy_stats

from relulab.experiments import bifurcation
from relulab.tables import stats, summary


def test_garwood_interval_matches_the_published_table():
    # Exact Poisson 95 % limits for the count (Garwood 1936; e.g. Ulm 1990, Table 1).
    assert stats.garwood_interval(0) == pytest.approx((0.0, 3.689), abs=1e-3)
    assert stats.garwood_interval(1) == pytest.approx((0.0253, 5.572), abs=1e-3)
    assert stats.garwood_interval(10) == pytest.approx((4.795, 18.39), abs=1e-2)


def test_garwood_interval_scales_with_exposure():
    low, high = stats.garwood_interval(10, exposure=1e9)
    assert low == pytest.approx(4.795e-9, rel=1e-3) and high == pytest.approx(18.39e-9, rel=1e-3)
    assert all(math.isnan(v) for v in stats.garwood_interval(3, exposure=0))
    with pytest.raises(ValueError):
        stats.garwood_interval(-1)


@pytest.mark.parametrize("mean", [0.5, 3.0, 12.0, 40.0])
def test_garwood_interval_covers_at_least_95_percent(mean):
    # Exact coverage under the Poisson distribution, summed over every count that matters.
    coverage = sum(
        scipy_stats.poisson.pmf(k, mean)
        for k in range(int(mean * 4 + 30))
        if stats.garwood_interval(k)[0] <= mean <= stats.garwood_interval(k)[1]
    )
    assert coverage >= 0.95


def test_old_homes_still_import_the_same_functions():
    assert bifurcation.wilson_interval is stats.wilson_interval
    assert summary.mean_ci95 is stats.mean_ci95


def test_mean_ci95_is_the_student_t_interval():
    mean, half = stats.mean_ci95([1.0, 2.0, 3.0, float("nan")])
    assert mean == 2.0
    assert half == pytest.approx(scipy_stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))
    assert math.isnan(stats.mean_ci95([1.0])[1])
