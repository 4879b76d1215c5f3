"""`run_scale`: one data-parallel point (DDP, or FSDP2 with `strategy="fsdp"`) per world size,
stored as it completes.

Each world size is launched `cfg.launches` times (k = 3 by default) through torchrun (`launch`), in
interleaved rounds (1, 2, 1, 2, 1, 2: launch_loop), each launch with budget/k of measurement
(`ScaleConfig.launch_policy`). In every launch the workers measure the training step with the
methodology of `nnscale.measure`; rank 0's step times of one launch are one "process" of the
point, and the k of them are combined as a sweep point's processes are (`measure.processes.combine`:
the estimate, its hierarchical 95 % CI, the processes block, the sweeps' status rule). DDP keeps
ranks in lockstep (a step ends when the slowest rank's gradients are reduced), so rank 0's times
are the world's. The point's `stats` also hold throughput, speedup and efficiency (and the paired
per-round speedups), the per-iteration breakdown, per-rank times and peak memory, and what DDP
logged or FSDP's collectives carried (`_point` says from which launch).

A launch that fails stores its world size with status "error", "timeout" or "oom" and the run
stops there; points stored before stay stored, and world sizes measured in only some rounds are
stored from those, flagged unstable (launch_loop).

Multi-node: every node runs run_scale with the same configuration; only node rank 0 stores.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

from nnscale.distributed.config import ScaleConfig
from nnscale.distributed.launch import worker_cores
from nnscale.distributed.launch_loop import (LAUNCH_FACTS, Launch, Sink, launch_and_store,
                                             median_launch, rounds_status)
from nnscale.distributed.metrics import (BREAKDOWN_SAMPLE_KEYS, scaling, straggler_stats,
                                         time_to_train_min)
from nnscale.measure.backends.base import canonical_device
from nnscale.measure.point import rate_throughput, summary_timing
from nnscale.measure.processes import combine
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


def workload(cfg: ScaleConfig, nproc: int, loaded: bool = False) -> Workload:
    """The point of one world size. The node layout, the DDP options and the link cap are fields,
    so that e.g. 2 nodes x 1 worker and 1 node x 2 workers (both world size 2) differ.
    `loaded`: the loaded reference of `nproc` workers instead (ScaleConfig.loaded_reference): world
    size 1 at the batch, threads and cores of one of the nproc workers, nproc copies at once."""
    world = cfg.launching.nnodes * nproc
    shape = cfg.input_shape or model_info(cfg.model).input_shape
    cpu = cfg.launching.device == "cpu"
    threads = worker_cores(cfg.launching, nproc).threads if cpu else 0
    return Workload(model=cfg.model, mode="training", batch_size=cfg.batch_for(world),
                    input_shape=tuple(shape), device=canonical_device(cfg.launching.device), precision=cfg.precision,
                    channels_last=cfg.channels_last, threads=threads, framework=cfg.framework,
                    world_size=1 if loaded else world, strategy=cfg.strategy, kind=DISTRIBUTED,
                    nnodes=1 if loaded else cfg.launching.nnodes, ddp=ddp_of(cfg),
                    link_cap_bit_per_s=None if loaded else cfg.launching.bandwidth_cap_bit_per_s,
                    link_cap_burst_bytes=None if loaded else cfg.launching.bandwidth_cap_burst_bytes,
                    concurrent_copies=nproc if loaded else 1)


def _job(cfg: ScaleConfig, w: Workload) -> tuple[dict, dict]:
    step = {"model": cfg.model, "batch": w.batch_size, "input_shape": list(w.input_shape),
            "precision": cfg.precision, "channels_last": cfg.channels_last, **ddp_options(cfg),
            "strategy": cfg.strategy}
    job = {"kind": "scale", "device": cfg.launching.device, "timeout_s": cfg.launching.timeout_s,
           "policy": cfg.launch_policy.to_dict(), "step": step, "breakdown": cfg.breakdown,
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


def _stats(cfg: ScaleConfig, w: Workload, result: dict) -> Stats:
    """One launch's statistics record. What the workload already says (world size, strategy, node
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
                            warmup_s=result["warmup_s"], measure_s=result["measure_s"],
                            target_rel_ci=cfg.policy.target_rel_ci,
                            budget_s=cfg.launch_policy.budget_s)
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
            and b.channels_last == w.channels_last and b.strategy == w.strategy and b.ddp == w.ddp
            # a loaded reference is neither the lone worker nor a world size of the series
            and b.concurrent_copies == w.concurrent_copies)


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
        if name == "1_worker":
            found["paired_speedups"] = paired_speedups(point, ref) if ref else None
    return replace(point, stats=replace(point.stats, distributed=replace(point.stats.distributed, **found)))


def launch_rates(m: Measurement) -> list[float]:
    """Rank 0's samples/s in each of the point's launches, in round order."""
    medians = m.stats.processes.process_medians_ms or (m.stats.timing.median_ms,)
    per_step = 1000.0 * m.workload.batch_size * m.workload.world_size
    return [per_step / t for t in medians]


def paired_speedups(point: Measurement, ref: Measurement) -> tuple[float, ...] | None:
    """Round r's rate over the reference's round-r rate, for each round; None unless the two were
    launched in the same rounds: each of the point's launches started after the reference's launch
    of that round and before the reference's next one (a resumed run's reference, measured in an
    earlier invocation, is not paired)."""
    mine, theirs = point.stats.launch, ref.stats.launch
    ta = mine.started_at_s if mine else None
    tb = theirs.started_at_s if theirs else None
    a, b = launch_rates(point), launch_rates(ref)
    if not ta or not tb or not len(ta) == len(tb) == len(a) == len(b):
        return None
    n = len(ta)
    if not all(tb[r] <= ta[r] and (r + 1 == n or ta[r] <= tb[r + 1]) for r in range(n)):
        return None
    return tuple(x / y for x, y in zip(a, b))


def run_scale(cfg: ScaleConfig, sink: Sink = Sink()) -> list[Measurement]:
    """Measure every world size of `cfg` (see the module docstring); raise WorldSizeFailed
    (launch_loop) on a failure."""
    storing = sink.storing(cfg.launching)
    known = sink.store.measurements(sink.run_name) if storing and sink.run_name else []

    def launches():
        for nproc in cfg.launching.nproc:
            if cfg.loaded_reference and nproc > 1:  # in each round just before its world size
                yield loaded_launch(cfg, nproc, known)
            w = workload(cfg, nproc)
            job, key = _job(cfg, w)
            # Every node's ranks run the traced steps (they hold collectives), so the flag is the
            # configuration's; only the storing node has a path to write to.
            job["trace"] = cfg.trace
            path = trace_path(sink, w) if cfg.trace and storing else None
            if path is not None:
                job["trace_path"] = str(path)
            # The trace: one step of the first launch only (a later one would add nothing but time).
            later = {k: v for k, v in job.items() if k != "trace_path"} | {"trace": False}
            yield Launch(nproc, job, key, failed=w, resume_key=w.key(), later_job=later,
                         points=lambda results, done, w=w: [_point(cfg, w, results, known + done)])

    return launch_and_store(cfg.launching, launches, sink, rounds=cfg.launches)


def loaded_launch(cfg: ScaleConfig, nproc: int, known: list[Measurement]) -> Launch:
    """The loaded reference of `nproc` workers: torchrun starts nproc ranks pinned as the workers
    of that world size are, each running the one-worker DDP step in a group of its own (worker
    `independent`); rank 0's times are the point's, every rank's medians are in per_rank_step_ms."""
    w = workload(cfg, nproc, loaded=True)
    job, key = _job(cfg, w)
    job.update(independent=True, trace=False)
    return Launch(nproc, job, dict(key, copies=nproc), failed=w, resume_key=w.key(),
                  points=lambda results, done: [_point(cfg, w, results, known + done)])


def _point(cfg: ScaleConfig, w: Workload, results: list[dict],
           known: list[Measurement]) -> Measurement:
    """The world size's point from its launches' results (one per round, module docstring)."""
    launches = [Measurement(w, "ok" if r["stable"] else "unstable", samples_ms=tuple(r["samples_ms"]),
                            stats=_stats(cfg, w, r)) for r in results]
    facts = [r.get(LAUNCH_FACTS) or {} for r in results]
    p = cfg.policy
    point = combine(launches, p.target_rel_ci, p.confidence, p.min_iters,
                    [f.get("steal_share") for f in facts])
    # The breakdown, per-rank lists, buckets and memory are the typical launch's (median_launch);
    # the trace comes from the first launch, the only one traced.
    mid = median_launch(launches)
    first, s = launches[0].stats, point.stats
    rate, global_batch = s.throughput.samples_per_s, w.batch_size * w.world_size
    distributed = replace(
        launches[mid].stats.distributed, trace_file=first.distributed.trace_file,
        step_timeline=first.distributed.step_timeline,
        samples_per_s_per_worker=rate / w.world_size if rate is not None else None,
        time_to_train_min=time_to_train_min(s.timing.median_ms, global_batch, cfg.dataset_size,
                                            cfg.epochs))
    launch = replace(first.launch, started_at_s=tuple(f.get("started_at_s") for f in facts))
    status, error = rounds_status(point, len(results), cfg.launches)
    stats = replace(s, timing=replace(s.timing, stable=status == "ok"), launch=launch,
                    distributed=distributed)
    point = replace(point, status=status, error=error, stats=stats)
    # A loaded reference has no speedup of its own: it is what N workers' compute is predicted from.
    return point if w.loaded else add_speedups(cfg, point, known + [point])
