"""Two-level statistics of a point measured in several fresh processes: iterations within processes.

Why two levels: the step time of a fresh process is not the same quantity from process to process.
Heap and page placement (ASLR), which cores and caches the scheduler hands out, the CPU's clock and
what else runs on a shared VM all change per process and stay fixed within it. On the 2-core
development VM six fresh processes of one point had medians 23.1 .. 27.2 img/s (16 % apart) while
each process's own 95 % CI was ±1.5 .. ±7.9 %: an interval built from the iterations of one
process describes that process, not the next one (docs/methodology.md has the figures). pyperf
spreads a benchmark over many worker processes for the same reason (Stinner, pyperf docs, "Run a
benchmark": 20 processes by default).

The model is the one-way random-effects model (Searle, Casella & McCulloch (1992), "Variance
Components", ch. 3): process i has its own level μ_i = μ + b_i with b_i ~ (0, σ_b²), and its
iterations scatter around μ_i with variance σ_w². The point's estimate is the mean of the k
per-process medians (the median within a process: robust to a slow iteration; the mean across
processes: each process is one draw of b_i and counts once, whatever its iteration count).

Its confidence interval comes from both levels, as variance components (a hierarchical bootstrap
for the within part, after Davison & Hinkley (1997), "Bootstrap Methods and Their Application",
§3.8, and Saravanan et al. (2020), "Application of the hierarchical bootstrap to multi-level data
in neuroscience"):

- within: each process's iterations are resampled with replacement (fixed seed: the same samples
  give the same interval) and the variance v_i of the resampled medians is that median's noise;
  v̄, the within noise of a process median, is the median of the v_i (robust: one process's
  bootstrap of a few iterations with one slow one would otherwise set it for all);
- between: the sample variance S² of the k medians. It holds the within noise once already, so the
  between component is σ_b² = max(0, S² - v̄) (the ANOVA estimator truncated at 0, Searle et al.
  §3.5) and var(estimate) = (σ_b² + v̄)/k = max(S², v̄)/k — never below what the iterations say;
- the interval is estimate ± t(k-1)·√var: Student's t with k-1 degrees of freedom, since only k
  independent processes inform the between part.

Why not the plain two-stage percentile bootstrap (resample processes, then iterations, take
quantiles of the replicates): with k = 3 its replicates never leave [min, max] of the three
medians, which covers the true level only 1 - 2·(1/2)³ = 75 % of the time, and resampling the
iterations as well counts the within noise twice. Welch-Satterthwaite degrees of freedom (moving
towards the iterations' count when the processes agree) undercovered, 90-92 % in the simulations.
tests/stats/test_stats_hierarchical.py measures the coverage over simulated reruns of a two-level
normal: ≈95 % (up to 100 % when the processes agree: conservative then), against 35-60 % for the
single-level interval of the pooled iterations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnscale.stats.summary import as_samples, t_quantile

BOOTSTRAP_REPLICATES = 2000
BOOTSTRAP_SEED = 20_24  # fixed: the same samples give the same interval, run after run
CHUNK_ELEMENTS = 4_000_000  # resampled iterations held at once (32 MB of float64)


@dataclass(frozen=True, slots=True)
class Hierarchical:
    """Estimate and 95 % CI of a point's step time across processes (ms), with its components."""

    processes: int
    estimate_ms: float  # mean of the per-process medians
    ci_low_ms: float
    ci_high_ms: float
    rel_ci: float  # half-width / estimate
    confidence: float
    process_medians_ms: tuple[float, ...]
    within_sd_ms: float  # pooled within-process standard deviation of an iteration
    between_sd_ms: float  # between-process standard deviation of the process level (≥ 0)
    between_share: float  # σ_b² / (σ_b² + se² of a process median): how much the processes differ
    bootstrap_se_ms: float


def hierarchical_ci(groups: Sequence[Sequence[float]], confidence: float = 0.95,
                    replicates: int = BOOTSTRAP_REPLICATES, seed: int = BOOTSTRAP_SEED) -> Hierarchical:
    """The point's estimate and CI from k >= 2 processes' iteration times (module docstring)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    xs = [as_samples(g) for g in groups]
    k = len(xs)
    if k < 2:
        raise ValueError(f"need at least 2 processes for an interval across processes, got {k}")
    medians = np.array([float(np.median(x)) for x in xs])
    estimate = float(medians.mean())
    # Within: each process's median resampled over its own iterations (stage 2 of the hierarchical
    # bootstrap), whose variance v_i is that median's within-process noise, any distribution.
    rng = np.random.default_rng(seed)
    v = np.array([float(_resampled_medians(x, replicates, rng).var(ddof=1)) for x in xs])
    # The typical process's (the median of the v_i), not their mean: a process of 5 iterations
    # with one slow one has a resampled median that is that slow iteration 6 % of the time, and
    # its v_i, 10-100x the others', set the floor of the whole point. In `make run` (session 9)
    # GoogLeNet inference batch 16 read ±24.3 % from 10 processes whose medians were 6.4 % apart
    # (±1.5 % with the typical v_i); under the model every process has the same within noise,
    # which the median of the v_i estimates robustly.
    within_med_var = float(np.median(v))
    # Between: the spread of the k medians (stage 1, the processes). It already holds the within
    # noise once, so σ_b² = max(0, S² - v̄) (ANOVA estimator truncated at 0, Searle et al. §3.5), and
    # var(estimate) = (σ_b² + v̄) / k = max(S², v̄) / k: never below what the iterations alone say.
    s2 = float(medians.var(ddof=1))
    between_var = max(0.0, s2 - within_med_var)
    se = math.sqrt((between_var + within_med_var) / k)
    # Student's t with k-1 degrees of freedom: only k independent processes inform the between part.
    # (Welch-Satterthwaite degrees of freedom, which move towards the iterations' count when the
    # processes agree, undercovered here: 90-92 % in the simulations of the tests.)
    t = t_quantile(0.5 + confidence / 2.0, k - 1)
    low, high = estimate - t * se, estimate + t * se
    dof = sum(x.size - 1 for x in xs)
    within_sd = math.sqrt(sum(float(((x - x.mean()) ** 2).sum()) for x in xs) / dof) if dof else math.nan
    total = between_var + within_med_var
    return Hierarchical(
        processes=k, estimate_ms=estimate, ci_low_ms=low, ci_high_ms=high,
        rel_ci=(high - low) / 2.0 / estimate if estimate > 0 else math.nan, confidence=confidence,
        process_medians_ms=tuple(float(m) for m in medians), within_sd_ms=within_sd,
        between_sd_ms=math.sqrt(between_var), between_share=between_var / total if total > 0 else 0.0,
        bootstrap_se_ms=se)


def _resampled_medians(x: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of `replicates` bootstrap resamples of x, in bounded memory."""
    out = np.empty(replicates)
    chunk = max(1, CHUNK_ELEMENTS // x.size)
    for start in range(0, replicates, chunk):
        stop = min(replicates, start + chunk)
        out[start:stop] = np.median(x[rng.integers(0, x.size, size=(stop - start, x.size))], axis=1)
    return out


def single_level_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """The old interval, for comparison: Student-t CI of the mean of all iterations pooled, as if
    they were independent (what one process's interval claims)."""
    x = as_samples(samples)
    mean = float(x.mean())
    half = t_quantile(0.5 + confidence / 2.0, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean - half, mean + half
