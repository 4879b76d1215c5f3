"""Throughput from summaries, the knee of a sweep, and warm-up detection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnscale.stats import knee, steady_state_index, summarize, throughput


def test_throughput_inverts_the_median_and_swaps_ci_bounds():
    x = np.random.default_rng(5).lognormal(math.log(50.0), 0.2, 200)
    s = summarize(x)
    t = throughput(s, batch_size=64)
    assert t.samples_per_s == pytest.approx(64 * 1000 / s.median_ms)
    assert t.ci_low == pytest.approx(64 * 1000 / s.median_ci_high_ms)
    assert t.ci_high == pytest.approx(64 * 1000 / s.median_ci_low_ms)
    assert t.ci_low < t.samples_per_s < t.ci_high
    # The median of the rates is the rate of the median (odd n: an actual sample).
    y = x[:199]
    assert np.median(64_000 / y) == pytest.approx(throughput(summarize(y), 64).samples_per_s)
    assert set(t.to_dict()) == {"samples_per_s", "samples_per_s_ci_low", "samples_per_s_ci_high"}


def test_throughput_ci_nan_when_sample_too_small():
    t = throughput(summarize([10.0, 11.0, 12.0]), 8)
    assert t.samples_per_s == pytest.approx(8000.0 / 11.0)
    assert math.isnan(t.ci_low) and math.isnan(t.ci_high)
    with pytest.raises(ValueError):
        throughput(summarize([1.0]), 0)


def test_knee_of_a_saturating_curve():
    batches = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    rates = [1000.0 * (1 - math.exp(-b / 8)) for b in batches]  # 95 % of max first at b=32
    assert knee(batches, rates) == 32
    assert knee(batches, rates, fraction=0.8) == 16
    assert knee(batches, rates, fraction=1.0) == 256
    # Order does not matter; failed points (NaN, 0) are ignored.
    assert knee(batches[::-1] + [512], rates[::-1] + [math.nan]) == 32
    assert knee([1, 2], [0.0, math.nan]) is None
    with pytest.raises(ValueError):
        knee([1, 2], [1.0])


def test_steady_state_index_after_exponential_warm_up():
    rng = np.random.default_rng(0)
    i = np.arange(300)
    x = 10.0 + 20.0 * np.exp(-i / 5.0) + rng.normal(0.0, 0.1, i.size)
    idx = steady_state_index(x, window=10)
    # Excess falls below the 5 % tolerance (0.5 ms) at i = 5·ln(40) ≈ 18.4; the rule is conservative
    # by up to one window.
    assert idx is not None and 18 <= idx <= 30
    assert np.all(np.abs(x[idx:] - 10.0) < 1.0)


def test_steady_state_index_flat_spiky_drifting_and_short():
    rng = np.random.default_rng(1)
    flat = 10.0 + rng.normal(0.0, 0.2, 200)
    assert steady_state_index(flat) == 0
    spiky = flat.copy()
    spiky[[30, 120, 190]] = 50.0  # GC pauses are not warm-up
    assert steady_state_index(spiky) == 0
    drifting = np.linspace(10.0, 20.0, 200) + rng.normal(0.0, 0.1, 200)
    assert steady_state_index(drifting) is None
    assert steady_state_index(flat[:15], window=10) is None
    # Noisy but steady: the tolerance widens with the noise of a window median.
    noisy = 10.0 + rng.normal(0.0, 2.0, 400)
    assert steady_state_index(noisy) == 0
    with pytest.raises(ValueError):
        steady_state_index(flat, window=0)
