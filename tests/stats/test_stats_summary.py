"""`nnscale.stats.summary` against distributions whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from nnscale.stats import (
    PERCENTILE_METHOD, Summary, is_stable, mad_outliers, mean_ci, median_ci, median_ci_ranks, summarize,
)

REPS = 2000


def test_mean_ci_covers_true_mean_95_percent_of_the_time():
    rng = np.random.default_rng(12345)
    mu, sd, n = 10.0, 2.0, 30
    draws = rng.normal(mu, sd, size=(REPS, n))
    hits = 0
    for row in draws:
        lo, hi = mean_ci(row, 0.95)
        hits += lo <= mu <= hi
    assert 0.93 <= hits / REPS <= 0.97


def test_summarize_ci_matches_student_t():
    x = np.random.default_rng(1).normal(5.0, 0.5, 40)
    s = summarize(x, 0.9)
    half = sps.t.ppf(0.95, 39) * x.std(ddof=1) / math.sqrt(40)
    assert s.ci_low_ms == pytest.approx(x.mean() - half)
    assert s.ci_high_ms == pytest.approx(x.mean() + half)
    assert s.rel_ci == pytest.approx(half / x.mean())
    assert s.confidence == 0.9


@pytest.mark.parametrize("n", [20, 25, 51])
def test_median_ci_ranks_coverage_is_exact_binomial_and_not_below_target(n):
    lo, hi, coverage = median_ci_ranks(n, 0.95)
    assert hi == n - 1 - lo
    expected = 1 - 2 * sps.binom.cdf(lo, n, 0.5)
    assert coverage == pytest.approx(expected)
    assert coverage >= 0.95
    # One rank tighter would fall short: the interval is the shortest that reaches the target.
    assert 1 - 2 * sps.binom.cdf(lo + 1, n, 0.5) < 0.95


def test_median_ci_none_when_sample_too_small():
    assert median_ci_ranks(5, 0.95) is None  # [min, max] of 5 covers with 1 - 2/32 = 0.9375
    assert median_ci_ranks(6, 0.95)[:2] == (0, 5)
    lo, hi = median_ci([1.0, 2.0, 3.0], 0.95)
    assert math.isnan(lo) and math.isnan(hi)


def test_median_ci_covers_true_median_of_lognormal():
    # Skewed like real step times: lognormal(mu, sigma) has median exp(mu).
    rng = np.random.default_rng(2024)
    mu, sigma, n = math.log(20.0), 0.5, 25
    true_median = math.exp(mu)
    draws = rng.lognormal(mu, sigma, size=(REPS, n))
    hits = sum(lo <= true_median <= hi for lo, hi in (median_ci(row, 0.95) for row in draws))
    _, _, exact = median_ci_ranks(n, 0.95)
    assert 0.93 <= hits / REPS <= 0.97
    assert abs(hits / REPS - exact) < 3 * math.sqrt(exact * (1 - exact) / REPS)


def test_percentiles_match_numpy_and_analytic_quantiles():
    rng = np.random.default_rng(7)
    x = rng.normal(100.0, 10.0, 20000)
    s = summarize(x)
    for p, got in ((50, s.p50_ms), (95, s.p95_ms), (99, s.p99_ms)):
        assert got == pytest.approx(np.percentile(x, p, method=PERCENTILE_METHOD))
        # Large sample: close to the normal quantile (se of p99 here is about 0.25).
        assert got == pytest.approx(sps.norm.ppf(p / 100, 100.0, 10.0), abs=1.0)
    assert s.p50_ms == s.median_ms
    # Hyndman & Fan type 7 on a small sample, by hand: position (n-1)·p.
    assert summarize([1.0, 2.0, 3.0, 4.0]).p95_ms == pytest.approx(3.0 + 0.85)


def test_summary_basic_fields_and_round_trip():
    x = [3.0, 1.0, 2.0, 5.0, 4.0]
    s = summarize(x)
    assert (s.n, s.mean_ms, s.median_ms, s.min_ms, s.max_ms) == (5, 3.0, 3.0, 1.0, 5.0)
    assert s.stdev_ms == pytest.approx(np.std(x, ddof=1))
    assert Summary.from_dict(s.to_dict() | {"samples_per_s": 1.0}) == s
    with pytest.raises(AttributeError):
        s.n = 3  # frozen


def test_single_sample_is_summarized_but_never_stable():
    s = summarize([7.0])
    assert s.n == 1 and s.median_ms == 7.0 and s.p99_ms == 7.0
    assert math.isnan(s.stdev_ms) and math.isnan(s.ci_low_ms) and math.isnan(s.rel_ci)
    assert not is_stable(s, target_rel_ci=1e9)


def test_is_stable_uses_relative_ci_half_width():
    rng = np.random.default_rng(3)
    tight = summarize(rng.normal(10.0, 0.01, 50))
    loose = summarize(rng.normal(10.0, 3.0, 10))
    assert is_stable(tight) and not is_stable(loose)
    assert is_stable(loose, target_rel_ci=loose.rel_ci)


def test_mad_outliers_counts_without_dropping():
    rng = np.random.default_rng(11)
    x = list(rng.normal(10.0, 0.1, 100)) + [20.0, 30.0, 0.5]
    assert mad_outliers(x) == 3
    s = summarize(x)
    assert s.outliers == 3 and s.n == 103 and s.max_ms == 30.0
    assert mad_outliers([5.0] * 10 + [6.0]) == 0  # MAD 0: no scale to judge by


@pytest.mark.parametrize("bad", [[], [1.0, math.nan], [[1.0, 2.0]], [math.inf]])
def test_bad_samples_are_rejected(bad):
    with pytest.raises(ValueError):
        summarize(bad)


def test_bad_confidence_is_rejected():
    with pytest.raises(ValueError):
        summarize([1.0, 2.0], confidence=95)
