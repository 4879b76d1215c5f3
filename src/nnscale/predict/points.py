"""The measured points calibration fits: read from a run's stored records (`extract_points`).

Two kinds of stored points take part (see `records.Measurement`):
- `nnscale allreduce` points: kind "allreduce", stats size_bytes and time_ms, at world_size p.
- data-parallel training points at world_size >= 2: the measured step time, with the single-device
  compute (the run's world_size = 1 point of the same model, batch, precision and threads, or else
  the point's own forward_ms + backward_ms + optimizer_ms) and the bucket layout DDP really used.

Each point also says which link its ring ran over, because points on different links must not share
one alpha and one B (docs/prediction.md, "Calibration"):
- `inter`: its ranks were on two or more nodes (the workload's `nnodes`),
  so the ring crossed the inter-node link (in bench/validate_prediction.py: the veth pair between
  two network namespaces); else every rank was on one node (loopback, or the node's own link);
- `cap`: the `tc tbf` rate the link was capped at (the workload's `link_cap_bit_per_s`);
- `burst`: that tbf's bucket, when the point recorded it (the workload's `link_cap_burst_bytes`,
  what `nnscale scale/allreduce --bandwidth-cap-burst` record); None for older points.
A point stored before these were workload fields is upgraded when it is read (records.upgrade_legacy).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from nnscale.predict.model import MIB, Bucketing, ModelProfile
from nnscale.records import ALLREDUCE, DISTRIBUTED, MEASURED_STATUSES, DDPOptions, Measurement
from nnscale.records_stats import Distributed


@dataclass(frozen=True, slots=True)
class Point:
    """One measured point the fit can use."""

    kind: str  # records.ALLREDUCE or "step"
    label: str
    world_size: int
    measured_s: float
    size_bytes: float = 0.0  # allreduce
    cap: float | None = None  # bytes/s
    burst: float | None = None  # bytes: the cap's tbf bucket, when recorded
    profile: ModelProfile | None = None  # step: step_time_s is the single-device compute
    batch: int = 0
    bucketing: Bucketing = field(default_factory=Bucketing)
    inter: bool = False  # the ranks spanned >= 2 nodes: the ring crossed the inter-node link
    compute_before_ms: float = 0.0  # allreduce: the compute before each timed call (0: back to back)


def _cap(m: Measurement) -> float | None:
    """The point's bandwidth cap in bytes/s; None without one."""
    bits = m.workload.link_cap_bit_per_s
    return float(bits) / 8 if bits else None


def _burst(m: Measurement, cap: float | None) -> float | None:
    """The cap's tbf bucket in bytes; None without a cap or a record."""
    burst = m.workload.link_cap_burst_bytes
    return float(burst) if cap is not None and burst else None


def _inter(m: Measurement) -> bool:
    """Did the point's ranks span two or more nodes?"""
    return m.workload.nnodes > 1


def step_time_s(m: Measurement) -> float | None:
    v = m.stats.timing.median_ms
    if isinstance(v, (int, float)) and v > 0:
        return float(v) / 1e3
    return statistics.median(m.samples_ms) / 1e3 if m.samples_ms else None


def compute_s(m: Measurement) -> float | None:
    """A DDP point's compute per step from its breakdown: forward + backward + optimizer (rank 0's
    marks, the typical launch: distributed/scaling.py), without the time its hooks waited for
    communication; None without a breakdown."""
    d = m.stats.distributed
    parts = (d.forward_ms, d.backward_ms, d.optimizer_ms) if d else ()
    return sum(parts) / 1e3 if parts and all(isinstance(v, (int, float)) for v in parts) else None


def loaded_ratio(busy: Measurement, lone: Measurement) -> float | None:
    """How much slower a loaded reference computed than the lone worker: their breakdowns'
    compute (docs/prediction.md, "Co-located workers": the copies' DDP hooks wait ~7 ms a step under
    load on the 2-core VM, as the workers' do, and that wait is the all-reduce calibration's too,
    so it must not be counted twice); their steps when either has no breakdown."""
    a, b = compute_s(busy), compute_s(lone)
    if not (a and b):
        a, b = step_time_s(busy), step_time_s(lone)
    return a / b if a and b else None


def jitter_samples_s(m: Measurement) -> tuple[float, ...]:
    """The point's per-iteration step times (s) as one launch's workers see them: each process's
    samples shifted by its own median onto the point's, so that the spread is step-to-step jitter
    only. N workers of one launch share that launch's machine state (clock, placement, neighbours);
    what differs between fresh processes moves all of them together and makes no straggler
    (terms.sync_cost_s). Pooled raw, a point measured in k processes would count the
    between-process spread as jitter. One process (or no per-process counts): the samples as stored."""
    xs = [x / 1e3 for x in m.samples_ms or ()]
    counts = m.stats.processes.process_iterations or ()
    if len(counts) < 2 or sum(counts) != len(xs):
        return tuple(xs)
    groups, start = [], 0
    for n in counts:
        groups.append(xs[start:start + n])
        start += n
    centre = statistics.median(xs)
    return tuple(x - statistics.median(g) + centre for g in groups if g for x in g)


def _ref_key(m: Measurement, threads: bool = True) -> tuple:
    w = m.workload
    return (w.model, w.batch_size, w.precision, w.threads if threads else None)


def _link_text(cap: float | None, inter: bool) -> str:
    where = "2 nodes " if inter else ""
    return where + ("no cap" if cap is None else f"{cap * 8 / 1e6:g} Mbit/s")


def measured_bucketing(m: Measurement) -> Bucketing:
    """The bucket layout DDP used at point `m`: its bucket cap (the workload's DDP options) and DDP's
    own log (the distributed block's ddp_logging.rebuilt_bucket_sizes, the buckets
    (ddp_logging.rebuilt_bucket_sizes, the buckets
    after DDP rebuilt them in gradient-ready order; else bucket_sizes) says how many all-reduce calls
    a step made; each call pays the latency once, so a wrong count is a latency error. The model's
    DDP rule (first bucket closes at first_bucket_mb, the others at bucket_mb) reproduces a layout
    when first_bucket_mb is the first bucket's size: e.g. torch 2.x built one 1724320-byte bucket for
    pytorch-mnist-net where the nominal 1 MiB first-bucket cap would give two (1.62 MB + 0.10 MB)."""
    d = m.stats.distributed or Distributed()
    bucket_mb = float((m.workload.ddp or DDPOptions()).bucket_mb)
    log = d.ddp_logging if isinstance(d.ddp_logging, dict) else {}
    sizes = [int(x) for x in re.findall(r"\d+", str(log.get("rebuilt_bucket_sizes") or log.get("bucket_sizes") or ""))]
    if sizes and sizes[0] > 0:
        return Bucketing(bucket_mb=bucket_mb, first_bucket_mb=sizes[0] / MIB)
    return Bucketing(bucket_mb=bucket_mb)


def extract_points(records: Sequence[Measurement],
                   profiles: dict[str, ModelProfile] | None = None) -> tuple[list[Point], list[str]]:
    """The usable points of a run, and one line per point left out saying why."""
    profiles = profiles or {}
    usable = [m for m in records if m.status in MEASURED_STATUSES]
    refs: dict[tuple, float] = {}
    # The one worker's per-iteration samples: N workers wait for the slowest (terms.sync_cost_s).
    spread: dict[tuple, tuple[float, ...]] = {}
    # (ref key, copies): the loaded reference; the lone reference of each key
    loaded: dict[tuple, Measurement] = {}
    lone: dict[tuple, Measurement] = {}
    for m in usable:  # single-device compute references
        w = m.workload
        if w.kind == ALLREDUCE or w.mode != "training" or w.world_size != 1 or not step_time_s(m):
            continue
        if w.loaded:
            loaded[(_ref_key(m), w.concurrent_copies)] = m
        else:
            lone.setdefault(_ref_key(m), m)
            refs.setdefault(_ref_key(m), step_time_s(m))
            refs.setdefault(_ref_key(m, threads=False), step_time_s(m))
            spread.setdefault(_ref_key(m), jitter_samples_s(m))
    points, skipped = [], [f"{m.workload.model} p={m.workload.world_size}: status {m.status}"
                           for m in records if m.status not in MEASURED_STATUSES]
    for m in usable:
        w, d, cap, inter = m.workload, m.stats.distributed or Distributed(), _cap(m), _inter(m)
        burst = _burst(m, cap)
        if w.kind == ALLREDUCE:
            size = m.stats.allreduce.size_bytes if m.stats.allreduce else None
            t = m.stats.timing.median_ms
            if w.world_size >= 2 and isinstance(size, (int, float)) and size > 0 and t and t > 0:
                points.append(Point(ALLREDUCE, f"allreduce {size:g} B p={w.world_size} {_link_text(cap, inter)}",
                                    w.world_size, t / 1e3, size_bytes=float(size), cap=cap, burst=burst,
                                    inter=inter, compute_before_ms=w.compute_before_ms))
            else:
                skipped.append(f"allreduce p={w.world_size}: needs world_size >= 2, size_bytes, time_ms")
            continue
        if w.mode != "training" or w.world_size < 2:
            continue
        if w.kind == DISTRIBUTED and w.strategy != "ddp":  # the model predicts DDP's all-reduce, not FSDP's collectives
            skipped.append(f"{w.model} p={w.world_size}: strategy {w.strategy}, not DDP")
            continue
        label = f"{w.model} b={w.batch_size} p={w.world_size} {_link_text(cap, inter)}"
        step = step_time_s(m)
        # Compute: one worker with the same threads; else this point's own breakdown (its workers may
        # have fewer threads than a lone worker had); else one worker whatever its threads.
        compute = refs.get(_ref_key(m))
        if compute is None and all(isinstance(v, (int, float)) for v in (d.forward_ms, d.backward_ms)):
            compute = (d.forward_ms + d.backward_ms + (d.optimizer_ms or 0.0)) / 1e3
        compute = compute or refs.get(_ref_key(m, threads=False))
        base = profiles.get(w.model)
        grad_bytes = d.bytes_allreduced_per_step
        if isinstance(grad_bytes, (int, float)) and grad_bytes > 0:
            if base is None:
                base = ModelProfile(w.model, params=max(1, round(grad_bytes / 4)), forward_flops=1.0,
                                    training_flops=3.0, source="uniform from bytes_allreduced_per_step")
            else:  # a comm hook (fp16 compression) changes the bytes per gradient element
                base = replace(base, bytes_per_grad=max(1, round(grad_bytes / base.params)))
        if step is None or compute is None or base is None:
            why = ("no step time" if step is None else "no single-device point or forward/backward breakdown"
                   if compute is None else "no model profile or bytes_allreduced_per_step")
            skipped.append(f"{label}: {why}")
            continue
        # Its workers' co-location: the loaded reference of as many copies as the node had workers,
        # over the lone reference it is set against (a compute from the point's own breakdown is
        # its co-located workers' already).
        busy, alone = loaded.get((_ref_key(m), w.nproc_per_node)), lone.get(_ref_key(m))
        ratio = loaded_ratio(busy, alone) if busy and alone and compute == refs.get(_ref_key(m)) else None
        factor = ((w.nproc_per_node, ratio),) if ratio else ()
        profile = replace(base, step_time_s=compute, measured_batch=w.batch_size, optimizer_s=None,
                          samples_s=spread.get(_ref_key(m), ()), loaded_factor=factor)
        points.append(Point("step", label, w.world_size, step, cap=cap, burst=burst, profile=profile,
                            batch=w.batch_size, bucketing=measured_bucketing(m), inter=inter))
    return points, skipped


def distinct_allreduces(points: Sequence[Point], inter: bool | None = None, capped: bool | None = None) -> int:
    """How many different (size, p, cap) all-reduces there are, on one link class and/or capped or not:
    repeated measurements of one configuration pin one number, not two."""
    return len({(p.size_bytes, p.world_size, p.cap) for p in points if p.kind == ALLREDUCE
                and (inter is None or p.inter == inter) and (capped is None or (p.cap is not None) == capped)})


def busbw(point: Point) -> float:
    """The all-reduce's bus bandwidth, bytes/s (nccl-tests: 2(p-1)/p n / t): a start for B."""
    return 2 * (point.world_size - 1) / point.world_size * point.size_bytes / point.measured_s
