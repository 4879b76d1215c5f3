"""Gradient bucketing: which gradients go into which all-reduce call, and when each call starts.

DDP's static buckets (S. Li et al., "PyTorch Distributed", PVLDB 13(12), 2020, §3.2.3) and Horovod's
Tensor Fusion cycle (horovod docs/tensor-fusion.rst). Ready times are in seconds of uncontended
backward work; `terms.Timeline` turns them into wall time when communication slows compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnscale.errors import UserError
from nnscale.predict.profile import Layer, ModelProfile

MIB = 2**20
DEFAULT_BUCKET_MB = 25.0  # DDP's bucket_cap_mb default (MiB)
DEFAULT_FIRST_BUCKET_MB = 1.0  # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES = 1 MiB
UNIFORM_LAYERS = 50  # without a per-layer table, gradients are assumed to arrive evenly


@dataclass(frozen=True, slots=True)
class Bucketing:
    """How gradients are grouped into all-reduce calls.

    "ddp": PyTorch DDP's static buckets (reverse parameter order, first bucket `first_bucket_mb`,
    then `bucket_mb`, a bucket closing once it reaches its cap; Li et al. 2020 §3.2.3).
    "horovod": Horovod's Tensor Fusion (horovod docs/tensor-fusion.rst): a background loop wakes
    every `cycle_ms` (or as soon as its previous all-reduces finish), takes every gradient ready by
    then and reduces them in fusion buffers of at most `bucket_mb` (a larger tensor goes alone).
    Defaults until Horovod 0.21: 64 MB and 5 ms (changelog of 0.21.0, PR #2468).
    """

    policy: str = "ddp"
    bucket_mb: float = DEFAULT_BUCKET_MB
    first_bucket_mb: float = DEFAULT_FIRST_BUCKET_MB
    cycle_ms: float = 5.0

    def __post_init__(self) -> None:
        if self.policy not in ("ddp", "horovod"):
            raise UserError(f"unknown bucketing {self.policy!r}; known: ddp, horovod")
        if min(self.bucket_mb, self.first_bucket_mb, self.cycle_ms) <= 0:
            raise UserError("bucket sizes and the fusion cycle must be positive")


DDP = Bucketing()
HOROVOD = Bucketing("horovod", 64.0, 64.0, 5.0)


def gradient_arrivals(profile: ModelProfile, backward_s: float) -> list[tuple[float, float]]:
    """(bytes, ready time after backward starts) per layer with parameters, in backward order.

    Each layer's backward takes its share of `work`; its gradients are ready when it is done.
    """
    layers = profile.layers or tuple(
        Layer(params=profile.params / UNIFORM_LAYERS, work=1.0) for _ in range(UNIFORM_LAYERS))
    total_work = sum(layer.work for layer in layers)
    out, clock = [], 0.0
    for layer in reversed(layers):  # backward visits layers last to first
        clock += backward_s * (layer.work / total_work if total_work > 0 else 1 / len(layers))
        if layer.params > 0:
            out.append((layer.params * profile.bytes_per_grad, clock))
    return out


def buckets(profile: ModelProfile, backward_s: float, bucketing: Bucketing = DDP) -> list[tuple[float, float]]:
    """DDP's static buckets as (bytes, ready time after backward starts), in launch order."""
    out: list[tuple[float, float]] = []
    filled, cap = 0.0, bucketing.first_bucket_mb * MIB
    for size, ready in gradient_arrivals(profile, backward_s):
        filled += size
        if filled >= cap:  # the bucket is full: it launches once its last gradient is ready
            out.append((filled, ready))
            filled, cap = 0.0, bucketing.bucket_mb * MIB
    if filled > 0:
        out.append((filled, backward_s))
    return out


def fusion_calls(arrivals: list[tuple[float, float]], bucketing: Bucketing, cost,
                 wall=lambda work: work, place=lambda start, d: start + d) -> float:
    """Horovod's loop over gradient `arrivals` (bytes, ready in backward work seconds); `cost(bytes)`
    -> seconds of one call, `wall(work)` -> when that work is done, `place(start, seconds)` puts a
    call on the communication stream (terms.Timeline; by default no contention). Returns when the
    last call ends (seconds after backward starts)."""
    cycle, cap = bucketing.cycle_ms * 1e-3, bucketing.bucket_mb * MIB
    pending = sorted(arrivals, key=lambda a: a[1])
    i, last_wake, free_at = 0, 0.0, 0.0
    while i < len(pending):
        wake = max(last_wake + cycle, free_at)  # next cycle, or when the last round is done
        first = wall(pending[i][1])
        if first > wake:  # nothing ready: sleep whole cycles until something is
            wake += cycle * math.ceil((first - wake) / cycle)
        group, fused = [], 0.0
        while i < len(pending) and wall(pending[i][1]) <= wake:  # all that is ready now, in order
            size = pending[i][0]
            if fused and fused + size > cap:  # the buffer is full: reduce it, start another
                group.append(fused)
                fused = 0.0
            fused += size
            i += 1
        t = wake
        for size in group + [fused]:
            t = place(t, cost(size))
        last_wake, free_at = wake, t
    return free_at
