"""Pure arithmetic of scaling points (no torch): bandwidths, speedup, efficiency, time to train.

Bandwidths follow nccl-tests' definitions (NVIDIA nccl-tests, doc/PERFORMANCE.md):
- algbw = S / t, with S the bytes of the reduced buffer and t the time of one all-reduce;
- busbw = algbw · 2(n−1)/n for all-reduce: a ring all-reduce moves 2(n−1)/n · S over each rank's
  link, so busbw is comparable with the hardware's link bandwidth whatever the rank count.
GB here are 10⁹ bytes, as in nccl-tests.

Speedup and efficiency compare throughputs (samples/s), which covers both kinds of scaling:
- weak scaling (fixed batch per worker): speedup = X(n)/X(1) is the scaled speedup (Gustafson);
- strong scaling (fixed global batch): X(n)/X(1) = T(1)/T(n) for the same amount of work (Amdahl).
Efficiency = speedup / (ratio of workers), against 1 worker and against 1 node (all of a node's
workers), as the seed's "1.55 × for 2 × nodes, 77 % efficiency" compares 8 nodes with 4.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

IMAGENET_TRAIN_IMAGES = 1_281_167  # ILSVRC-2012 training set (Russakovsky et al., IJCV 2015)
DEFAULT_EPOCHS = 90  # the ResNet schedule (He et al., CVPR 2016), the seed's setting


def algbw_gb_per_s(size_bytes: int, time_ms: float) -> float:
    """nccl-tests' algorithm bandwidth: bytes / time, in GB/s (10⁹ B/s)."""
    return size_bytes / (time_ms / 1000.0) / 1e9 if time_ms > 0 else math.inf


def allreduce_busbw_factor(world_size: int) -> float:
    """2(n−1)/n: the share of the buffer each rank sends for an all-reduce (nccl-tests)."""
    return 2.0 * (world_size - 1) / world_size if world_size > 0 else 0.0


def busbw_gb_per_s(size_bytes: int, time_ms: float, world_size: int) -> float:
    return algbw_gb_per_s(size_bytes, time_ms) * allreduce_busbw_factor(world_size)


def scaling(samples_per_s: float, workers: int, base_samples_per_s: float | None,
            base_workers: int | None) -> tuple[float | None, float | None]:
    """(speedup, efficiency) of a point against a baseline point; (None, None) without one."""
    if not base_samples_per_s or not base_workers or not samples_per_s:
        return None, None
    speedup = samples_per_s / base_samples_per_s
    return speedup, speedup / (workers / base_workers)


def time_to_train_min(step_ms: float, global_batch: int, dataset_size: int = IMAGENET_TRAIN_IMAGES,
                      epochs: int = DEFAULT_EPOCHS) -> float:
    """Minutes to train `epochs` over `dataset_size` samples at this step time (last batch partial,
    counted as a whole step: ceil), data loading assumed hidden, as the seed's projection does."""
    steps_per_epoch = math.ceil(dataset_size / global_batch)
    return epochs * steps_per_epoch * step_ms / 60_000.0


BREAKDOWN_PARTS = ("forward_ms", "backward_ms", "optimizer_ms", "comm_exposed_ms")
# Per instrumented iteration, stored as `breakdown_samples` (rank 0): one list per iteration.
BREAKDOWN_SAMPLE_KEYS = BREAKDOWN_PARTS + ("comm_total_ms", "step_ms")
BREAKDOWN_KEYS = BREAKDOWN_PARTS + ("comm_total_ms", "comm_overlapped_ms", "step_ms",
                                    "bytes_allreduced", "buckets")


def summarize_breakdown(iterations: Sequence[dict[str, float]]) -> dict[str, float]:
    """The parts of a typical instrumented iteration: their means over the iterations whose step
    time lies between its quartiles (an interquartile mean, ranked by step time).

    Means of the parts add up exactly to the mean step of the same iterations, which medians of the
    parts would not (a descheduled thread lands in a different part each time, so the parts' medians
    can sum to much less than the median step); trimming by step time keeps the slow outliers out,
    as the median step time, which the parts are compared with, does.
    """
    if not iterations:
        return {}
    ranked = sorted(iterations, key=lambda it: it["step_ms"])
    n = len(ranked)
    middle = ranked[n // 4: n - n // 4] or ranked
    # Every part an iteration carries: DDP's (BREAKDOWN_KEYS) or FSDP's, which adds all-gather and
    # reduce-scatter times and bytes (nnscale.distributed.fsdp_step).
    out = {k: math.fsum(it[k] for it in middle) / len(middle) for k in ranked[0]}
    out["breakdown_sum_ms"] = math.fsum(out[k] for k in BREAKDOWN_PARTS)
    return out


def straggler_stats(per_rank_compute_ms: Sequence[float]) -> dict[str, float | int]:
    """Which rank computes slowest (forward + backward + optimizer, communication waits excluded),
    and how much slower than the median rank; a straggler makes every other rank wait in the
    all-reduce, so it shows here and not in the ranks' step times, which DDP keeps in lockstep."""
    if not per_rank_compute_ms:
        return {}
    slowest = max(range(len(per_rank_compute_ms)), key=per_rank_compute_ms.__getitem__)
    median = statistics.median(per_rank_compute_ms)
    return {"slowest_rank": slowest,
            "straggler_ratio": per_rank_compute_ms[slowest] / median if median > 0 else math.nan}


def parse_size(text: str) -> int:
    """'1K' -> 1024, '256M' -> 268435456, '4096' -> 4096 (binary multiples, as nccl-tests' -b/-e)."""
    units = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30}
    t = text.strip().upper()
    num, unit = t.rstrip("KMGB"), t[len(t.rstrip("KMGB")):]
    if unit.endswith("B") and len(unit) == 2:
        unit = unit[0]
    if not num.isdigit() or unit not in units or int(num) <= 0:
        raise ValueError(text)
    return int(num) * units[unit]


def parse_sizes(text: str) -> list[int]:
    """'1K..256M' (doubling, as nccl-tests -f 2) or a comma list '1K,64K,1M'; ValueError if bad."""
    if ".." in text:
        lo_text, _, hi_text = text.partition("..")
        lo, hi = parse_size(lo_text), parse_size(hi_text)
        if lo > hi:
            raise ValueError(text)
        sizes = []
        while lo <= hi:
            sizes.append(lo)
            lo *= 2
        return sizes
    sizes = sorted({parse_size(p) for p in text.split(",") if p.strip()})
    if not sizes:
        raise ValueError(text)
    return sizes
