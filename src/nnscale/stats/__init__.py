"""Statistics of timing samples: pure functions over plain numbers (numpy/scipy, never torch).

`summarize` a point's step times, turn the summary into a `throughput`, decide whether it
`is_stable`, combine several processes' iterations (`hierarchical_ci`), find where warm-up ends (`steady_state_index`) and the `knee` of a batch-size sweep.
"""

from nnscale.stats.hierarchical import Hierarchical, hierarchical_ci, single_level_ci
from nnscale.stats.steady import steady_state_index
from nnscale.stats.summary import (
    PERCENTILE_METHOD,
    Summary,
    is_stable,
    mad_outliers,
    mean_ci,
    median_ci,
    median_ci_ranks,
    summarize,
)
from nnscale.stats.throughput import Throughput, knee, throughput

__all__ = [
    "PERCENTILE_METHOD",
    "Hierarchical",
    "Summary",
    "Throughput",
    "hierarchical_ci",
    "is_stable",
    "knee",
    "mad_outliers",
    "mean_ci",
    "median_ci",
    "median_ci_ranks",
    "single_level_ci",
    "steady_state_index",
    "summarize",
    "throughput",
]
