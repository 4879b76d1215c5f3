"""Summary statistics of one point's per-iteration step times (milliseconds).

Pure functions over plain sequences of floats: numpy and scipy only, never a framework.

Sources of the formulas:
- Confidence interval of the mean: Student's t interval, mean ± t(1-α/2; n-1)·s/√n, with s the
  sample standard deviation (ddof=1). NIST/SEMATECH e-Handbook of Statistical Methods, §1.3.5.2
  ("Confidence limits for the mean"), https://www.itl.nist.gov/div898/handbook/eda/section3/eda352.htm
- Percentiles: numpy's default "linear" method, which is definition 7 of Hyndman & Fan (1996),
  "Sample quantiles in statistical packages", The American Statistician 50(4):361-365 (also R's
  default and Excel's PERCENTILE.INC).
- Distribution-free confidence interval of the median from order statistics: the number of samples
  below the true median is Binomial(n, 1/2), so [x(k), x(n-k+1)] covers it with probability
  1 - 2·P(B ≤ k-1). Conover (1999), "Practical Nonparametric Statistics", 3rd ed., §3.2 (confidence
  interval for a quantile); also Le Boudec (2011), "Performance Evaluation of Computer and
  Communication Systems", ch. 2 (confidence interval for the median and other quantiles).
- Outliers: median ± 3·1.4826·MAD, where MAD is the median absolute deviation from the median and
  1.4826 = 1/Φ⁻¹(3/4) makes it a consistent estimator of σ for normal data. Rousseeuw & Croux
  (1993), "Alternatives to the median absolute deviation", JASA 88(424):1273-1283; threshold 3 as
  in Leys et al. (2013), "Detecting outliers: Do not use standard deviation around the mean, use
  absolute deviation around the median", J. Exp. Social Psychology 49(4):764-766 ("very
  conservative").
  Outliers are counted, never dropped: a slow iteration is part of what a user pays for.

Undefined quantities (the stdev and mean CI of a single sample, a median CI that the sample is
too small to reach at the requested confidence) are NaN; NaN fails every comparison, so such a
summary is never "stable".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from scipy import special

# Student's t quantile and the binomial CDF from scipy.special rather than scipy.stats: they are the
# functions scipy.stats itself evaluates (scipy 1.17: `t._ppf` is `special.stdtrit`,
# stats/_continuous_distns.py; `binom._cdf` is `_binom_cdf(floor(k), n, p)` of special._ufuncs,
# stats/_discrete_distns.py), so every value is bit-identical, without importing scipy.stats' hundred
# distributions: about 0.9 s of CPU (`python -X importtime`) in each measuring worker's start-up.
try:
    from scipy.special._ufuncs import _binom_cdf
except ImportError:  # a SciPy that has moved it: the public, slower-to-import way
    from scipy.stats import binom as _binom

    def _binom_cdf(k, n, p):
        return _binom.cdf(k, n, p)


def t_quantile(q: float, dof: float) -> float:
    """Student's t quantile (`scipy.stats.t.ppf(q, dof)`); NaN for dof <= 0."""
    return float(special.stdtrit(dof, q))

MAD_TO_SIGMA = 1.4826  # 1/Φ⁻¹(3/4), Rousseeuw & Croux (1993)
OUTLIER_MADS = 3.0  # Leys et al. (2013)
PERCENTILE_METHOD = "linear"  # Hyndman & Fan (1996) definition 7, numpy's default


@dataclass(frozen=True, slots=True)
class Summary:
    """Statistics of one sample of step times. Times in ms; `rel_ci` is a fraction of the mean."""

    n: int
    mean_ms: float
    median_ms: float
    stdev_ms: float  # sample standard deviation (ddof=1); NaN when n < 2
    min_ms: float
    max_ms: float
    confidence: float  # of both confidence intervals, e.g. 0.95
    ci_low_ms: float  # Student-t CI of the mean
    ci_high_ms: float
    rel_ci: float  # CI half-width / mean
    median_ci_low_ms: float  # order-statistic CI of the median
    median_ci_high_ms: float
    p50_ms: float  # percentiles by PERCENTILE_METHOD
    p95_ms: float
    p99_ms: float
    outliers: int  # samples beyond median ± 3·1.4826·MAD (counted, not removed)

    def to_dict(self) -> dict[str, float | int]:
        """Named statistics, units in the key names: fits `Measurement.stats`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> Summary:
        """Inverse of `to_dict`; keys that are not fields (e.g. throughput) are ignored."""
        return cls(**{f.name: d[f.name] for f in fields(cls)})


def as_samples(samples: Sequence[float]) -> np.ndarray:
    """The samples as a 1-D float array; ValueError if empty or not finite (a caller's bug)."""
    x = np.asarray(samples, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"need a non-empty 1-D sequence of samples, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite numbers")
    return x


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def mean_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean (NIST e-Handbook §1.3.5.2); NaNs when n < 2."""
    _check_confidence(confidence)
    x = as_samples(samples)
    n = x.size
    if n < 2:
        return math.nan, math.nan
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    t = t_quantile(0.5 + confidence / 2.0, n - 1)
    return mean - t * sem, mean + t * sem


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int, float] | None:
    """0-based ranks (lo, hi) of the sorted sample bounding the median CI, and their exact coverage.

    [x(lo), x(hi)] with hi = n-1-lo covers the true median with probability 1 - 2·P(B ≤ lo),
    B ~ Binomial(n, 1/2) (Conover 1999, §3.2). `lo` is the largest rank whose coverage is still at
    least `confidence`, so the interval is the shortest symmetric one that is not anti-conservative.
    None when even [min, max] falls short (n < 6 at 95 %).
    """
    _check_confidence(confidence)
    if n < 1:
        raise ValueError(f"need n >= 1, got {n}")
    alpha_half = (1.0 - confidence) / 2.0
    cdf = _binom_cdf(np.arange((n + 1) // 2, dtype=float), n, 0.5)  # P(B <= j), j below the middle
    j = int(np.searchsorted(cdf, alpha_half, side="right")) - 1  # largest j with P(B <= j) <= α/2
    if j < 0:
        return None
    return j, n - 1 - j, 1.0 - 2.0 * float(cdf[j])


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median (order statistics, Conover 1999 §3.2).

    Valid for any continuous distribution, skewed step times included; NaNs when the sample is too
    small for the requested confidence (see `median_ci_ranks`).
    """
    x = np.sort(as_samples(samples))
    ranks = median_ci_ranks(x.size, confidence)
    if ranks is None:
        return math.nan, math.nan
    lo, hi, _ = ranks
    return float(x[lo]), float(x[hi])


def mad_outliers(samples: Sequence[float], k: float = OUTLIER_MADS) -> int:
    """How many samples lie beyond median ± k·1.4826·MAD (Leys et al. 2013).

    When the MAD is 0 (more than half the samples are equal, e.g. a coarse clock) there is no scale
    to judge by, and 0 is returned rather than flagging every sample that differs from the median.
    """
    x = as_samples(samples)
    med = float(np.median(x))
    dev = np.abs(x - med)
    scale = MAD_TO_SIGMA * float(np.median(dev))
    if scale == 0.0:
        return 0
    return int(np.count_nonzero(dev > k * scale))


def summarize(samples_ms: Sequence[float], confidence: float = 0.95) -> Summary:
    """Summarize per-iteration step times (ms) measured after warm-up."""
    _check_confidence(confidence)
    x = as_samples(samples_ms)
    n = x.size
    mean = float(x.mean())
    median = float(np.median(x))
    ci_low, ci_high = mean_ci(x, confidence)
    rel_ci = (ci_high - ci_low) / 2.0 / mean if mean > 0 else math.nan
    med_low, med_high = median_ci(x, confidence)
    p50, p95, p99 = (float(v) for v in np.percentile(x, [50, 95, 99], method=PERCENTILE_METHOD))
    return Summary(
        n=int(n),
        mean_ms=mean,
        median_ms=median,
        stdev_ms=float(x.std(ddof=1)) if n >= 2 else math.nan,
        min_ms=float(x.min()),
        max_ms=float(x.max()),
        confidence=float(confidence),
        ci_low_ms=ci_low,
        ci_high_ms=ci_high,
        rel_ci=rel_ci,
        median_ci_low_ms=med_low,
        median_ci_high_ms=med_high,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        outliers=mad_outliers(x),
    )


def is_stable(summary: Summary, target_rel_ci: float = 0.02) -> bool:
    """True when the mean's CI half-width is within `target_rel_ci` of the mean (2 % by default).

    The usual stopping rule of benchmark harnesses: repeat until the relative CI half-width is below
    a target (Georges, Buytaert & Eeckhout (2007), "Statistically rigorous Java performance
    evaluation", OOPSLA 2007). NaN (n < 2) is never stable.
    """
    return bool(summary.rel_ci <= target_rel_ci)
