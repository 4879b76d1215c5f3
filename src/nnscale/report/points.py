"""Reading stored points: their numbers, their flags, and how they group into curves.

Measurement.stats is a free-form dict written by `measure` and `distributed`; the report reads it
here only, tolerating missing keys (a point measured by an older nnscale, an OOM point with no
timings) and older key names (`samples_per_s` before `samples_per_s_median`). Nothing here draws or
formats for a medium: that is `plots`, `tables` and the writers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from nnscale.records import SWEEP, Measurement, Workload
from nnscale.stats import knee as _knee

# Statuses whose timings are real (an unstable point was measured, only less precisely than asked).
MEASURED = ("ok", "unstable")
# A point during which the hypervisor took at least this share of the CPUs is flagged.
STEAL_FLAG = 0.05
# What, besides the model and mode, tells two batch-size curves apart.
VARIANT_FIELDS = ("framework", "precision", "channels_last", "compile", "device", "threads")


def num(stats: dict, *names: str) -> float | None:
    """The first of `names` in `stats` that is a finite number, else None (missing, NaN, text)."""
    for name in names:
        value = stats.get(name)
        if isinstance(value, bool) or value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            return value
    return None


def rate(m: Measurement) -> float | None:
    """Median throughput in samples/s (the point's headline number)."""
    return num(m.stats, "samples_per_s_median", "samples_per_s")


def rate_ci(m: Measurement) -> tuple[float | None, float | None]:
    return num(m.stats, "samples_per_s_ci_low"), num(m.stats, "samples_per_s_ci_high")


def step_ms(m: Measurement) -> float | None:
    return num(m.stats, "step_time_ms_median", "median_ms", "step_time_ms_mean", "mean_ms")


def latency(m: Measurement, pct: int) -> float | None:
    """The pct-th percentile of the step time in ms (inference latency of one batch)."""
    return num(m.stats, f"latency_ms_p{pct}", f"p{pct}_ms")


def memory(m: Measurement) -> float | None:
    return num(m.stats, "peak_memory_bytes")


def mfu(m: Measurement) -> float | None:
    """Model FLOP utilisation as a fraction of peak (0.42 = 42 %)."""
    return num(m.stats, "mfu")


def measured(m: Measurement) -> bool:
    return m.status in MEASURED and rate(m) is not None


def flags(m: Measurement) -> list[str]:
    """Short words that qualify a point: why it failed, or why its number is less certain."""
    out = []
    if m.status != "ok":
        out.append(m.status)
    if m.status in MEASURED:
        lo, hi = rate_ci(m)
        if lo is None or hi is None:
            out.append("no CI")
        rel = num(m.stats, "rel_ci")
        if rel is not None and m.status == "unstable":
            out.append(f"CI ±{100 * rel:.1f} %")
        outliers = num(m.stats, "outliers")
        if outliers:
            out.append(f"{int(outliers)} outliers")
        steal = num(m.stats, "steal_share")
        if steal is not None and steal >= STEAL_FLAG:
            out.append(f"steal {100 * steal:.0f} %")
    return out


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
    (world_size, point, speedup). The speedup is the stored one (`distributed` computes it against
    its own baseline) or, failing that, this point's rate over the one-worker point's rate."""
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
            s = num(m.stats, "speedup")
            if s is None and base is not None:
                s = 1.0 if ws == 1 else rate(m) / rate(base)
            rows.append((ws, m, s))
        out[key] = rows
    return out


def efficiency(ws: int, m: Measurement, speedup: float | None) -> float | None:
    e = num(m.stats, "efficiency")
    if e is None and speedup is not None:
        e = speedup / ws
    return e


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
