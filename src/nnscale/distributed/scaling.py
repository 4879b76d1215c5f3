"""`run_scale`: one data-parallel point (DDP, or FSDP2 with `strategy="fsdp"`) per world size,
stored as it completes.

For each world size the workers are launched through torchrun (`launch`), measure the training step
with the methodology of `nnscale.measure`, and rank 0's result becomes one `Measurement`: its
`samples_ms` are rank 0's step times (DDP keeps ranks in lockstep: a step ends when the slowest
rank's gradients are reduced), its `stats` hold throughput, speedup and efficiency, the per-iteration
breakdown, per-rank times and peak memory, and what DDP logged or FSDP's collectives carried. A
world size that fails is stored with status "error" or "timeout" and the run stops there; the
points before it stay stored.

Multi-node: every node runs run_scale with the same configuration; only node rank 0 stores.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

from nnscale.distributed.config import ScaleConfig
from nnscale.distributed.launch import worker_cores
from nnscale.distributed.launch_loop import Launch, Sink, launch_and_store
from nnscale.distributed.metrics import (BREAKDOWN_SAMPLE_KEYS, scaling, straggler_stats,
                                         time_to_train_min)
from nnscale.measure.backends.base import canonical_device
from nnscale.measure.point import rate_throughput, summary_timing
from nnscale.records import DISTRIBUTED, MEASURED_STATUSES, DDPOptions, Measurement, Workload
from nnscale.records_stats import Compute, Distributed, Host, Stats, frozen_block
from nnscale.records_stats import Launch as LaunchStats
from nnscale.stats import Summary
from nnscale.zoo import model_info



def ddp_options(cfg: ScaleConfig) -> dict:
    return {"bucket_mb": cfg.bucket_mb, "grad_as_bucket_view": cfg.grad_as_bucket_view,
            "static_graph": cfg.static_graph, "comm_hook": cfg.comm_hook}


def ddp_of(cfg: ScaleConfig) -> DDPOptions | None:
    """The DDP options a point runs with; None for FSDP."""
    return DDPOptions(**ddp_options(cfg)) if cfg.strategy == "ddp" else None


def workload(cfg: ScaleConfig, nproc: int) -> Workload:
    """The point of one world size. The node layout, the DDP options and the link cap are fields,
    so that e.g. 2 nodes x 1 worker and 1 node x 2 workers (both world size 2) differ."""
    world = cfg.launching.nnodes * nproc
    shape = cfg.input_shape or model_info(cfg.model).input_shape
    cpu = cfg.launching.device == "cpu"
    threads = worker_cores(cfg.launching, nproc).threads if cpu else 0
    return Workload(model=cfg.model, mode="training", batch_size=cfg.batch_for(world),
                    input_shape=tuple(shape), device=canonical_device(cfg.launching.device), precision=cfg.precision,
                    channels_last=cfg.channels_last, threads=threads, framework=cfg.framework,
                    world_size=world, strategy=cfg.strategy, kind=DISTRIBUTED,
                    nnodes=cfg.launching.nnodes, ddp=ddp_of(cfg),
                    link_cap_bit_per_s=cfg.launching.bandwidth_cap_bit_per_s,
                    link_cap_burst_bytes=cfg.launching.bandwidth_cap_burst_bytes)


def _job(cfg: ScaleConfig, w: Workload) -> tuple[dict, dict]:
    step = {"model": cfg.model, "batch": w.batch_size, "input_shape": list(w.input_shape),
            "precision": cfg.precision, "channels_last": cfg.channels_last, **ddp_options(cfg),
            "strategy": cfg.strategy}
    job = {"kind": "scale", "device": cfg.launching.device, "timeout_s": cfg.launching.timeout_s,
           "policy": cfg.policy.to_dict(), "step": step, "breakdown": cfg.breakdown,
           "breakdown_iters": cfg.breakdown_iters}
    return job, {"step": step, "policy": job["policy"], "world": w.world_size}


def trace_path(sink: Sink, w: Workload) -> Path | None:
    """Where a point's Chrome trace goes: beside the store (an SQLite file's FILE.traces/ folder,
    ./nnscale-traces/ for a server store), one file per run and workload; None without a store."""
    if sink.store is None:
        return None
    db = Path(sink.store.url)
    folder = (db.parent / f"{db.name}.traces" if sink.store.backend == "sqlite" and db.is_file()
              else Path.cwd() / "nnscale-traces")
    run = re.sub(r"[^A-Za-z0-9._-]+", "_", sink.run_name or "run").strip("._") or "run"
    return folder / f"{run}-w{w.world_size}-{w.key()}.trace.json"


def _stats(cfg: ScaleConfig, w: Workload, nproc: int, result: dict) -> Stats:
    """The point's statistics record. What the workload already says (world size, strategy, node
    layout, DDP options, link cap, batch, threads) is not written again here."""
    summary = Summary.from_dict(result["summary"])
    global_batch = w.batch_size * w.world_size
    rates = rate_throughput(summary, global_batch)
    per_rank = sorted(result["per_rank"], key=lambda r: r["rank"])
    bd = result["breakdown"]
    peak, memory = _memory_stats(per_rank)
    distributed = frozen_block(Distributed, {
        "scaling": cfg.scaling, "global_batch": global_batch,
        "samples_per_s_per_worker": (rates.samples_per_s / w.world_size
                                     if rates.samples_per_s is not None else None),
        **{k: bd[k] for k in ("forward_ms", "backward_ms", "optimizer_ms", "comm_exposed_ms",
                              "comm_total_ms", "comm_overlapped_ms", "breakdown_sum_ms")},
        "breakdown_step_ms": bd["step_ms"], "breakdown_iters": result["breakdown_iters"],
        "breakdown_samples_keys": list(BREAKDOWN_SAMPLE_KEYS),
        "breakdown_samples": result["breakdown_samples"],
        "breakdown_method": (f"DDP comm hook marks, {result['breakdown_mode']} (docs/distributed.md)"
                             if cfg.strategy == "ddp" else "FSDP2 custom all-gather/reduce-scatter "
                             "marks, inline (docs/distributed.md)"),
        "per_rank_step_ms": [r["step_ms"] for r in per_rank],
        "per_rank_compute_ms": [r["compute_ms"] for r in per_rank],
        "per_rank_comm_exposed_ms": [r["breakdown"]["comm_exposed_ms"] for r in per_rank],
        "per_rank_host": [r["host"] for r in per_rank],
        # Each rank's own reading after setup (worker._resources): torch threads and the cores it
        # may run on; and what one worker is, in words, for the report.
        "per_rank_threads": [r.get("threads") for r in per_rank],
        "per_rank_cpus": [r.get("cpus") for r in per_rank],
        "worker": describe_worker(cfg.launching.device, per_rank[0]),
        **straggler_stats([r["compute_ms"] for r in per_rank]),
        **memory,
        **_strategy_stats(cfg, result),
        "dataset_size": cfg.dataset_size, "epochs": cfg.epochs,
        "time_to_train_min": time_to_train_min(summary.median_ms, global_batch, cfg.dataset_size,
                                               cfg.epochs),
        "trace_file": result.get("trace_file"),  # Chrome trace JSON of one step (trace.py)
        "step_timeline": result.get("step_timeline"),
    })
    timing = summary_timing(summary, stable=result["stable"], warmup_iters=result["warmup_iters"],
                            warmup_s=result["warmup_s"], measure_s=result["measure_s"])
    return Stats(timing=timing, throughput=rates, compute=Compute(peak_memory_bytes=peak),
                 host=Host(torch_version=result.get("torch")),
                 launch=LaunchStats(backend=result["backend"], slurm_job_id=os.environ.get("SLURM_JOB_ID")),
                 distributed=distributed)


def describe_worker(device: str, rank: dict) -> str:
    """One worker of the point, in words: '1 CPU thread pinned to core 0', or the GPU's name."""
    if device == "cuda":
        return f"1 GPU ({rank.get('gpu') or 'CUDA'})"
    threads, cpus = rank.get("threads"), rank.get("cpus") or []
    what = f"{threads} CPU thread{'s' if threads != 1 else ''}"
    if not rank.get("pinned"):
        return what + f" (not pinned: more workers than cores, sharing {len(cpus)} cores)"
    return what + f" pinned to core{'s' if len(cpus) > 1 else ''} {','.join(map(str, cpus))}"


def _memory_stats(per_rank: list[dict]) -> tuple[int | None, dict]:
    """The peak of the rank that needs the most (nnscale.distributed.memory), and the per-rank
    memory fields of the distributed block: peaks and the model state each rank holds."""
    mems = [r.get("memory") or {} for r in per_rank]
    peaks = [m.get("peak_memory_bytes") for m in mems]
    known = [p for p in peaks if p is not None]
    first = mems[0] if mems else {}
    return max(known) if known else None, {
        "per_rank_peak_memory_bytes": peaks,
        "per_rank_model_state_bytes": [m.get("param_bytes", 0) + m.get("grad_bytes", 0)
                                       + m.get("optimizer_state_bytes", 0) for m in mems],
        **{f"{k}_per_rank": first.get(k) for k in ("param_bytes", "grad_bytes",
                                                   "optimizer_state_bytes")},
        "memory_method": first.get("memory_method")}


def _strategy_stats(cfg: ScaleConfig, result: dict) -> dict:
    """What only one strategy has: DDP's buckets and log, FSDP's collectives and layout."""
    bd = result["breakdown"]
    if cfg.strategy == "ddp":
        return {"bytes_allreduced_per_step": bd["bytes_allreduced"],
                "buckets": bd["buckets"], "ddp_logging": result["ddp_logging"]}
    out = {k: bd.get(k, 0.0) for k in ("all_gather_ms", "reduce_scatter_ms", "all_gathers",
                                        "reduce_scatters")}
    out["bytes_all_gathered_per_step"] = bd.get("bytes_all_gathered", 0.0)
    out["bytes_reduce_scattered_per_step"] = bd.get("bytes_reduce_scattered", 0.0)
    out["fsdp_layout"] = result.get("fsdp_layout")
    if not result.get("exposed_measured", True):  # CUDA: FSDP's streams overlap, not separated
        out.update(comm_exposed_ms=None, comm_overlapped_ms=None)
    return out


def _same_series(a: Measurement, cfg: ScaleConfig, w: Workload) -> bool:
    b = a.workload
    # The same threads per worker: a 1-worker point with more threads is another kind of worker.
    return (a.status in MEASURED_STATUSES and b.model == w.model
            and canonical_device(b.device) == w.device and b.threads == w.threads
            and b.precision == w.precision and b.input_shape == w.input_shape
            and b.channels_last == w.channels_last and b.strategy == w.strategy and b.ddp == w.ddp)


def add_speedups(cfg: ScaleConfig, point: Measurement, known: list[Measurement]) -> Measurement:
    """`point` with its speedup and efficiency against 1 worker and (multi-node points) against
    1 node, from points of this run (this invocation's, or stored ones for series split across
    jobs)."""
    w = point.workload
    series = [m for m in known if _same_series(m, cfg, w)]
    want_batch = cfg.batch_per_worker or cfg.global_batch  # the 1-worker point's batch
    one = [m for m in series if m.workload.world_size == 1 and m.workload.batch_size == want_batch]
    global_batch = cfg.global_batch or cfg.batch_per_worker * w.nproc_per_node
    node = [m for m in series if m.workload.nnodes == 1 and m.workload.nproc_per_node == w.nproc_per_node
            and m.stats.distributed and m.stats.distributed.global_batch == global_batch]
    found = {}
    for name, base, active in (("1_worker", one, True), ("1_node", node, w.nnodes > 1)):
        ref = base[-1] if base and active else None
        speedup, eff = scaling(point.stats.throughput.samples_per_s, w.world_size,
                               ref.stats.throughput.samples_per_s if ref else None,
                               ref.workload.world_size if ref else None)
        found[f"speedup_vs_{name}"], found[f"efficiency_vs_{name}"] = speedup, eff
        found[f"baseline_{name}"] = (f"world size {ref.workload.world_size}, batch per worker "
                                     f"{ref.workload.batch_size}" if ref else None)
    return replace(point, stats=replace(point.stats, distributed=replace(point.stats.distributed, **found)))


def run_scale(cfg: ScaleConfig, sink: Sink = Sink()) -> list[Measurement]:
    """Measure every world size of `cfg` (see the module docstring); raise WorldSizeFailed
    (launch_loop) on a failure."""
    storing = sink.storing(cfg.launching)
    known = sink.store.measurements(sink.run_name) if storing and sink.run_name else []

    def launches():
        for nproc in cfg.launching.nproc:
            w = workload(cfg, nproc)
            job, key = _job(cfg, w)
            # Every node's ranks run the traced steps (they hold collectives), so the flag is the
            # configuration's; only the storing node has a path to write to.
            job["trace"] = cfg.trace
            path = trace_path(sink, w) if cfg.trace and storing else None
            if path is not None:
                job["trace_path"] = str(path)
            yield Launch(nproc, job, key, failed=w, resume_key=w.key(),
                         points=lambda result, done, w=w, nproc=nproc: [_point(cfg, w, nproc, result,
                                                                               known + done)])

    return launch_and_store(cfg.launching, launches, sink)


def _point(cfg: ScaleConfig, w: Workload, nproc: int, result: dict,
           known: list[Measurement]) -> Measurement:
    point = Measurement(w, "ok" if result["stable"] else "unstable",
                        samples_ms=tuple(result["samples_ms"]), stats=_stats(cfg, w, nproc, result))
    return add_speedups(cfg, point, known + [point])
