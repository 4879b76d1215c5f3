"""Warm-up detection: where a series of per-iteration times becomes steady.

The first iterations of a benchmark are slow (allocator and cache warm-up, cuDNN autotuning, JIT,
clock ramp-up). `steady_state_index` finds the first index from which on the series looks like its
own tail, with a sliding-window rule in the spirit of Georges, Buytaert & Eeckhout (2007),
"Statistically rigorous Java performance evaluation", OOPSLA (steady state = the window statistic
stops changing beyond a threshold), made robust with medians:

1. Reference: the tail, the last t = max(window, n // 4) samples, assumed steady. Its level is
   r = median(tail) and its noise σ = 1.4826·MAD(tail) (Rousseeuw & Croux 1993, see `summary`).
2. Tolerance τ = max(rel_tol·r, z·√(π/2)·σ/√window): a relative floor, or z standard errors of a
   window median, whichever is larger; √(π/2)·σ/√m is the asymptotic standard error of the median of
   m normal samples (a sample p-quantile has asymptotic variance p(1-p)/(m·f(q)²), van der Vaart
   (1998), "Asymptotic Statistics", ch. 21; with p = 1/2 and f(q) = 1/(σ√(2π)) this is πσ²/(2m)),
   so noisy series are not declared unsteady for their noise alone.
3. Window medians m_j = median(x[j : j+window]) for every start j; a window deviates when
   |m_j - r| > τ. Medians, not means, so that one slow iteration (a GC pause) does not count as
   warm-up.
4. The steady index is the first sample after the last deviating window (last deviating j +
   window), 0 if no window deviates.
5. Bounded: if that index is beyond `max_fraction` of the series (warm-up took more than half the
   samples, or the series drifts all along) or the series is shorter than two windows, None —
   never steady within what was measured; the caller should measure longer or report drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnscale.stats.summary import MAD_TO_SIGMA, as_samples

MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2.0)  # se(median) ≈ √(π/2)·σ/√m, van der Vaart (1998) ch. 21


def steady_state_index(
    samples: Sequence[float],
    window: int = 10,
    rel_tol: float = 0.05,
    z: float = 3.0,
    max_fraction: float = 0.5,
) -> int | None:
    """First index from which the series is steady, or None if it never is (see module docstring).

    `window`: samples per sliding window; `rel_tol`: relative tolerance around the tail's median;
    `z`: how many standard errors of a window median count as noise; `max_fraction`: the largest
    share of the series that warm-up may take.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0.0 < max_fraction <= 1.0:
        raise ValueError(f"max_fraction must be in (0, 1], got {max_fraction}")
    x = as_samples(samples)
    n = x.size
    if n < 2 * window:
        return None
    tail = x[n - max(window, n // 4) :]
    ref = float(np.median(tail))
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(tail - ref)))
    tol = max(rel_tol * abs(ref), z * MEDIAN_SE_FACTOR * sigma / math.sqrt(window))
    medians = np.median(sliding_window_view(x, window), axis=1)
    deviating = np.flatnonzero(np.abs(medians - ref) > tol)
    index = 0 if deviating.size == 0 else int(deviating[-1]) + window
    if index > max_fraction * n:
        return None
    return index
