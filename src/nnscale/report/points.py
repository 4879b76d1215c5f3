"""Reading stored points: their numbers, their flags, and how they group into curves.

Measurement.stats is the typed record (records_stats.py); the report reads its headline numbers
here, tolerating missing values (an OOM point with no timings, NaN). Older key names are the
record's business (records_stats_legacy.py), not the report's. Nothing here draws or formats for a
medium: that is `plots`, `tables` and the writers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from nnscale.records import MEASURED_STATUSES, SWEEP, Measurement, Workload
from nnscale.records_stats import Distributed
from nnscale.stats import knee as _knee

# Statuses whose timings are real (an unstable point was measured, only less precisely than asked).
# A point during which the hypervisor took at least this share of the CPUs is flagged.
STEAL_FLAG = 0.05
# What, besides the model and mode, tells two batch-size curves apart.
VARIANT_FIELDS = ("framework", "precision", "channels_last", "compile", "device", "threads")


def num(value) -> float | None:
    """`value` as a finite float, else None (missing, NaN, a flag, text)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def dist(m: Measurement) -> Distributed:
    """The point's distributed block; all None for a point of one process."""
    return m.stats.distributed or Distributed()


def worker(m: Measurement) -> str | None:
    """What one worker of a distributed point was, in words (scaling.describe_worker)."""
    words = dist(m).worker
    return words if isinstance(words, str) else None


def rate(m: Measurement) -> float | None:
    """Median throughput in samples/s (the point's headline number)."""
    return num(m.stats.throughput.samples_per_s)


def rate_ci(m: Measurement) -> tuple[float | None, float | None]:
    t = m.stats.throughput
    return num(t.samples_per_s_ci_low), num(t.samples_per_s_ci_high)


def step_ms(m: Measurement) -> float | None:
    t = m.stats.timing
    median = num(t.median_ms)
    return median if median is not None else num(t.mean_ms)


def latency(m: Measurement, pct: int) -> float | None:
    """The pct-th percentile of the step time in ms: one request's latency for an inference
    point. A sweep's training step is no request, so it has none; a distributed or all-reduce
    point's percentiles are its (slowest rank's) step or call latency."""
    s = m.stats
    if m.workload.mode != "inference" and s.launch is None:
        return None
    return num(getattr(s.timing, f"p{pct}_ms"))


def memory(m: Measurement) -> float | None:
    return num(m.stats.compute.peak_memory_bytes)


def mfu(m: Measurement) -> float | None:
    """Model FLOP utilisation as a fraction of peak (0.42 = 42 %)."""
    return num(m.stats.compute.mfu)


def measured(m: Measurement) -> bool:
    return m.status in MEASURED_STATUSES and rate(m) is not None


def flags(m: Measurement) -> list[str]:
    """Short words that qualify a point: why it failed, or why its number is less certain."""
    out = []
    if m.status != "ok":
        out.append(m.status)
    if m.status in MEASURED_STATUSES:
        lo, hi = rate_ci(m)
        if lo is None or hi is None:
            out.append("no CI")
        rel = num(m.stats.timing.rel_ci)
        if rel is not None and m.status == "unstable":
            out.append(f"CI ±{100 * rel:.1f} %")
        outliers = num(m.stats.timing.outliers)
        if outliers:
            out.append(f"{int(outliers)} outliers")
        steal = num(m.stats.processes.steal_share)
        if steal is not None and steal >= STEAL_FLAG:
            out.append(f"steal {100 * steal:.0f} %")
    return out


def lone_reference(m: Measurement, ms: Iterable[Measurement]) -> Measurement | None:
    """The lone worker a loaded reference `m` is set against: the latest measured world-size-1 point
    of the same step (model, strategy, batch, threads, precision) that ran alone; None without."""
    w = m.workload
    lone = [x for x in ms if measured(x) and x.workload.world_size == 1 and not x.workload.loaded
            and (x.workload.model, x.workload.strategy, x.workload.batch_size, x.workload.threads,
                 x.workload.precision) == (w.model, w.strategy, w.batch_size, w.threads, w.precision)]
    return lone[-1] if lone else None


def variant(w: Workload) -> tuple:
    return tuple(getattr(w, f) for f in VARIANT_FIELDS)


def variant_label(w: Workload, varying: Iterable[str]) -> str:
    """A curve's legend entry, naming only what differs between the curves it is drawn with."""
    parts = []
    for f in varying:
        value = getattr(w, f)
        if f == "channels_last":
            parts.append("channels-last" if value else "NCHW")
        elif f == "compile":
            parts.append("compiled" if value else "eager")
        elif f == "threads":
            parts.append(f"{value} threads" if value else "default threads")
        else:
            parts.append(str(value))
    return " ".join(parts) or w.precision


def varying_fields(workloads: Iterable[Workload]) -> list[str]:
    """The VARIANT_FIELDS that take more than one value; precision at least, for the legend."""
    seen = defaultdict(set)
    for w in workloads:
        for f in VARIANT_FIELDS:
            seen[f].add(getattr(w, f))
    fields = [f for f in VARIANT_FIELDS if len(seen[f]) > 1]
    return fields or ["precision"]


def models(ms: Iterable[Measurement]) -> list[str]:
    """Models in the order they were first measured (the order the user asked for them)."""
    return list(dict.fromkeys(m.workload.model for m in ms))


def single_worker(ms: Iterable[Measurement]) -> list[Measurement]:
    """The batch-size sweeps' points (a data-parallel run's 1-worker point belongs to its scaling
    series)."""
    return [m for m in ms if m.workload.kind == SWEEP]


def curves(ms: Iterable[Measurement]) -> dict[tuple, list[Measurement]]:
    """Batch-size sweeps: points grouped by (model, mode, variant), each list sorted by batch."""
    groups: dict[tuple, list[Measurement]] = defaultdict(list)
    for m in ms:
        w = m.workload
        groups[(w.model, w.mode, variant(w))].append(m)
    return {k: sorted(v, key=lambda m: m.workload.batch_size) for k, v in groups.items()}


def knee_of(points: list[Measurement]) -> int | None:
    """The knee of a batch sweep (smallest batch within 95 % of the best throughput; `stats.knee`)."""
    good = [m for m in points if measured(m)]
    if len(good) < 2:
        return None
    return _knee([m.workload.batch_size for m in good], [rate(m) for m in good])


def baseline_key(w: Workload) -> tuple:
    """Everything but the world size: a distributed point and its one-worker baseline share it."""
    return (w.model, w.mode, w.batch_size, w.input_shape, w.precision, w.channels_last, w.compile,
            w.engine, w.message_bytes)


def speedups(ms: list[Measurement]) -> dict[tuple, list[tuple[int, Measurement, float | None]]]:
    """Scaling curves: for each baseline_key with points at more than one world size, sorted
    (world_size, point, speedup): this point's rate over the one-worker point's rate."""
    groups: dict[tuple, dict[int, Measurement]] = defaultdict(dict)
    for m in ms:
        if measured(m):
            groups[baseline_key(m.workload)][m.workload.world_size] = m
    out = {}
    for key, by_ws in groups.items():
        if len(by_ws) < 2 or max(by_ws) < 2:
            continue
        base = by_ws.get(1)
        rows = []
        for ws in sorted(by_ws):
            m = by_ws[ws]
            s = None
            if base is not None:
                s = 1.0 if ws == 1 else rate(m) / rate(base)
            rows.append((ws, m, s))
        out[key] = rows
    return out


def efficiency(ws: int, m: Measurement, speedup: float | None) -> float | None:
    return None if speedup is None else speedup / ws


def best_points(ms: Iterable[Measurement]) -> list[Measurement]:
    """Per (model, mode): the one-worker point with the highest median throughput."""
    best: dict[tuple, Measurement] = {}
    for m in single_worker(ms):
        if not measured(m):
            continue
        k = (m.workload.model, m.workload.mode)
        if k not in best or rate(m) > rate(best[k]):
            best[k] = m
    return list(best.values())


def frameworks(ms: Iterable[Measurement]) -> list[str]:
    """Frameworks of the sweeps' points (data-parallel and all-reduce points run an engine of
    torch's, not another framework to compare)."""
    return list(dict.fromkeys(m.workload.framework for m in ms if m.workload.kind == SWEEP))
