"""The all-reduce microbenchmark: `run_allreduce` (parent) and `allreduce_sizes` (in every worker).

For each size, every rank all-reduces (SUM) a buffer of that many bytes through torch.distributed,
as DDP uses it, timed per call with the measurement methodology (warm-up until steady, then until
the CI target or the budget). The ranks agree on when to stop through an all-reduce of a flag on a
separate gloo group, which also lines them up before the next timed call, so one rank's late start
is not counted as another's wait. The reported time of an iteration is the slowest rank's (the
collective is done when the last rank has its result); nccl-tests averages over ranks by default
(its `-a` option), which on a balanced system is the same. Bandwidths: see `metrics` (nccl-tests'
algbw and busbw).

With `compute_before_ms` (`--compute-before`), every rank runs that much compute before each
timed call, untimed (AfterCompute): the call as a DDP step meets it, after forward and backward.

Each world size is launched `cfg.launches` times in interleaved rounds (launch_loop), and a size's
point combines its launches as a sweep point combines its processes (measure.processes.combine):
one launch's interval misses what the next launch shows.

Each point is a `Measurement` like any other: kind "allreduce", the buffer's dtype (`precision`)
and size (`message_bytes`) as workload fields (so each size is its own workload), `samples_ms` the
per-call times (slowest rank; every launch's, in round order), and stats size_bytes, time_ms,
algbw_gb_per_s and busbw_gb_per_s as nccl-tests defines them. `nnscale.predict` reads these names.
"""

from __future__ import annotations

import time
from dataclasses import replace

import torch
import torch.distributed as dist

from nnscale.distributed.config import AllreduceConfig
from nnscale.distributed.ddp_step import collective_flag
from nnscale.distributed.launch import worker_cores
from nnscale.distributed.launch_loop import (LAUNCH_FACTS, Launch, Sink, launch_and_store,
                                             median_launch, rounds_status)
from nnscale.distributed.metrics import algbw_gb_per_s, busbw_gb_per_s
from nnscale.measure.backends.base import canonical_device
from nnscale.measure.methodology import CpuTimer, MeasurePolicy, measure
from nnscale.records import ALLREDUCE, Measurement, Workload
from nnscale.measure.point import summary_timing
from nnscale.measure.processes import combine
from nnscale.records_stats import Allreduce, Stats
from nnscale.records_stats import Launch as LaunchStats
from nnscale.stats import Summary, summarize

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class CudaSyncTimer:
    """Wall time of a call that ends with a device synchronize: a collective is complete when the
    host sees its result, and NCCL kernels run on their own stream, so events on the current stream
    would not bracket them."""

    def time_ms(self, step) -> float:
        torch.cuda.synchronize()
        return CpuTimer().time_ms(lambda: (step(), torch.cuda.synchronize()))


class AfterCompute:
    """A timer that runs `compute_ms` of matrix products on the rank's device before each timed
    call, untimed: the call then meets the rank as a DDP step's bucket does, after forward and
    backward. On the 2-core CPU VMs a 1.72 MB gloo call cost a mean 3.9 ms after 20 ms of compute
    against 2.5 ms back to back (bench/allreduce_patterns.py, docs/benchmarks.md): a rank that
    computed meets the call with its peer asleep, not polling."""

    def __init__(self, timer, compute_ms: float, device: torch.device) -> None:
        self.timer, self.compute_s, self.device = timer, compute_ms / 1e3, device
        self.a = torch.randn(256, 256, device=device)

    def time_ms(self, step) -> float:
        start = time.perf_counter()
        while time.perf_counter() - start < self.compute_s:
            self.a @ self.a
            if self.device.type == "cuda":
                torch.cuda.synchronize()
        return self.timer.time_ms(step)


def allreduce_sizes(sizes: list[int], dtype: str, device: torch.device, policy: MeasurePolicy,
                    ctrl, world_size: int, compute_before_ms: float = 0.0) -> list[dict]:
    """One result dict per size: samples (slowest rank per iteration) and nccl-tests bandwidths;
    with `compute_before_ms`, each call after that much compute (AfterCompute)."""
    torch_dtype = DTYPES[dtype]
    itemsize = torch.tensor([], dtype=torch_dtype).element_size()
    timer = CudaSyncTimer() if device.type == "cuda" else CpuTimer()
    if compute_before_ms > 0:
        timer = AfterCompute(timer, compute_before_ms, device)
    agree = collective_flag(ctrl)
    results = []
    for size in sizes:
        numel = max(1, size // itemsize)
        buf = torch.zeros(numel, dtype=torch_dtype, device=device)  # zeros: sums never overflow
        timed = measure(lambda b=buf: dist.all_reduce(b), timer, policy, agree=agree)
        per_rank = [None] * world_size
        dist.all_gather_object(per_rank, list(timed.samples_ms), group=ctrl)
        slowest = [max(col) for col in zip(*per_rank)]
        summary = summarize(slowest, policy.confidence)
        nbytes = numel * itemsize
        t = summary.median_ms
        results.append({
            "size_bytes": nbytes,
            "numel": numel,
            "samples_ms": slowest,
            "stable": timed.stable,
            "warmup_iters": timed.warmup_iters,
            "time_ms": t,
            "algbw_gb_per_s": algbw_gb_per_s(nbytes, t),
            "busbw_gb_per_s": busbw_gb_per_s(nbytes, t, world_size),
            "per_rank_time_ms": [sorted(s)[len(s) // 2] for s in per_rank],
            **summary.to_dict(),
        })
        del buf
    return results


# --- the parent's side: one launch per world size, one point per size ------------------------

def workload(cfg: AllreduceConfig, nproc: int, size_bytes: int) -> Workload:
    """One size at one world size; `size_bytes` as the workers rounded it (whole elements)."""
    itemsize = torch.tensor([], dtype=DTYPES[cfg.dtype]).element_size()
    cpu = cfg.launching.device == "cpu"
    threads = worker_cores(cfg.launching, nproc).threads if cpu else 0
    return Workload(model=ALLREDUCE, mode="training", batch_size=1, input_shape=(),
                    device=canonical_device(cfg.launching.device), precision=cfg.dtype, threads=threads,
                    world_size=cfg.launching.nnodes * nproc, kind=ALLREDUCE,
                    nnodes=cfg.launching.nnodes,
                    message_bytes=max(1, size_bytes // itemsize) * itemsize,
                    link_cap_bit_per_s=cfg.launching.bandwidth_cap_bit_per_s,
                    link_cap_burst_bytes=cfg.launching.bandwidth_cap_burst_bytes,
                    compute_before_ms=float(cfg.compute_before_ms))


def _launch_point(cfg: AllreduceConfig, nproc: int, r: dict, backend: str) -> Measurement:
    """One size as one launch measured it."""
    summary = Summary.from_dict(r)  # of the slowest rank's times (allreduce_sizes)
    stats = Stats(
        timing=summary_timing(summary, warmup_iters=r["warmup_iters"]),
        launch=LaunchStats(backend=backend),
        allreduce=Allreduce(size_bytes=r["size_bytes"], algbw_gb_per_s=r["algbw_gb_per_s"],
                            busbw_gb_per_s=r["busbw_gb_per_s"],
                            per_rank_time_ms=tuple(r["per_rank_time_ms"]),
                            bandwidth_definition="nccl-tests doc/PERFORMANCE.md: algbw = S/t, "
                                                 "busbw = algbw*2(n-1)/n, GB = 1e9 B"))
    return Measurement(workload(cfg, nproc, r["size_bytes"]), "ok" if r["stable"] else "unstable",
                       samples_ms=tuple(r["samples_ms"]), stats=stats)


def _points(cfg: AllreduceConfig, nproc: int, results: list[dict]) -> list[Measurement]:
    """One point per size from its launches (one result per round): each launch is one process of
    the point, combined as scale's launches are (measure.processes.combine: the median, its
    hierarchical 95 % CI across launches, the status rule); algbw and busbw of the combined median.
    What the workload says (size, dtype, nodes, link cap) is not repeated."""
    facts = [r.get(LAUNCH_FACTS) or {} for r in results]
    steals = [f.get("steal_share") for f in facts]
    started = tuple(f.get("started_at_s") for f in facts)
    p, world = cfg.policy, cfg.launching.nnodes * nproc
    points = []
    for j in range(len(results[0]["sizes"])):
        launches = [_launch_point(cfg, nproc, r["sizes"][j], r["backend"]) for r in results]
        point = combine(launches, p.target_rel_ci, p.confidence, p.min_iters, steals)
        first, s = launches[0].stats, point.stats
        mid = launches[median_launch(launches)].stats.allreduce  # the typical launch's ranks
        t, size = s.timing.median_ms, first.allreduce.size_bytes
        allreduce = replace(mid, algbw_gb_per_s=algbw_gb_per_s(size, t),
                            busbw_gb_per_s=busbw_gb_per_s(size, t, world))
        status, error = rounds_status(point, len(results), cfg.launches)
        # combine's samples/s (batch 1 x world) means nothing for a collective: the launch's none.
        stats = replace(s, timing=replace(s.timing, stable=status == "ok"), allreduce=allreduce,
                        throughput=first.throughput,
                        launch=replace(first.launch, started_at_s=started))
        points.append(replace(point, status=status, error=error, stats=stats))
    return points


def run_allreduce(cfg: AllreduceConfig, sink: Sink = Sink()) -> list[Measurement]:
    """Measure every size at every world size, each world size launched `cfg.launches` times in
    interleaved rounds (1, 2, 1, 2, ...: launch_loop); raise WorldSizeFailed (launch_loop) if a
    launch fails."""
    def launches():
        for nproc in cfg.launching.nproc:
            world = cfg.launching.nnodes * nproc
            job = {"kind": ALLREDUCE, "device": cfg.launching.device, "sizes": list(cfg.sizes),
                   "dtype": cfg.dtype, "timeout_s": cfg.launching.timeout_s,
                   "policy": cfg.launch_policy.to_dict(), "compute_before_ms": cfg.compute_before_ms}
            key = {"sizes": job["sizes"], "dtype": cfg.dtype, "policy": job["policy"], "world": world,
                   "compute_before_ms": cfg.compute_before_ms}
            yield Launch(nproc, job, key, failed=workload(cfg, nproc, cfg.sizes[0]),
                         points=lambda results, _done, nproc=nproc: _points(cfg, nproc, results))

    return launch_and_store(cfg.launching, launches, sink, rounds=cfg.launches)
