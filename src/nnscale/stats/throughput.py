"""Throughput (samples per second) from step-time summaries, and the knee of a batch-size sweep.

Throughput is reported from the *median* step time, never the mean: the rate is a monotone
transform of the time, and quantiles commute with monotone transforms while means do not
(E[1/T] ≠ 1/E[T], Jensen's inequality). So

    median(rate) = c / median(time),   c = batch_size · 1000 ms/s,

and a confidence interval [L, U] of the median time maps to [c/U, c/L] for the median rate with the
same coverage, because t ↦ c/t is strictly decreasing on t > 0: the events {L ≤ m ≤ U} and
{c/U ≤ c/m ≤ c/L} are the same event. (Equivariance of quantiles under monotone transforms:
Koenker (2005), "Quantile Regression", ch. 2.) The median CI itself is the order-statistic one of
`summary.median_ci`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nnscale.stats.summary import Summary


@dataclass(frozen=True, slots=True)
class Throughput:
    """Median rate in samples/s and its confidence interval (NaN where the time CI is NaN)."""

    samples_per_s: float
    ci_low: float
    ci_high: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        """Named statistics, units in the key names: fits `Measurement.stats`."""
        return {
            "samples_per_s": self.samples_per_s,
            "samples_per_s_ci_low": self.ci_low,
            "samples_per_s_ci_high": self.ci_high,
        }


def _rate(samples_per_step: float, time_ms: float) -> float:
    if math.isnan(time_ms):
        return math.nan
    if time_ms <= 0.0:
        return math.inf
    return samples_per_step * 1000.0 / time_ms


def throughput(summary: Summary, batch_size: int) -> Throughput:
    """Samples per second from a step-time summary.

    `batch_size` is the number of samples one timed step processes (for data-parallel runs, the
    global batch: per-worker batch × world size). The CI bounds swap because the rate is a
    decreasing function of the time (see the module docstring).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return Throughput(
        samples_per_s=_rate(batch_size, summary.median_ms),
        ci_low=_rate(batch_size, summary.median_ci_high_ms),
        ci_high=_rate(batch_size, summary.median_ci_low_ms),
        confidence=summary.confidence,
    )


def knee(
    batch_sizes: Sequence[int], throughputs: Sequence[float], fraction: float = 0.95
) -> int | None:
    """The smallest batch size whose throughput reaches `fraction` of the best throughput.

    This project's definition of the knee of a saturating throughput curve (the 95 % threshold is
    a convention, not a published constant): beyond it a larger batch buys less than
    1 - fraction more speed but costs memory and latency. Points whose throughput is NaN or not
    positive (failed: OOM, error) are ignored; None when no point is left.
    """
    if len(batch_sizes) != len(throughputs):
        raise ValueError(f"{len(batch_sizes)} batch sizes but {len(throughputs)} throughputs")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    points = sorted(
        (int(b), float(t))
        for b, t in zip(batch_sizes, throughputs, strict=True)
        if t is not None and math.isfinite(t) and t > 0.0
    )
    if not points:
        return None
    best = max(t for _, t in points)
    return next(b for b, t in points if t >= fraction * best)
