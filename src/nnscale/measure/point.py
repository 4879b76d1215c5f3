"""One point, in this process: prepare, time the first call, measure, and make the `Measurement`.

`measure_point` never raises for what a point can do wrong: an allocation failure becomes an "oom"
point, any other exception an "error" point, each with a one-line message. The worker process runs
it (`nnscale.measure.worker`); benchmarks and tests may call it directly.

Statistics are the typed record, units in the field names (see docs/methodology.md for each):
throughput from the median step time with the order-statistic CI of the median
(`nnscale.stats.throughput`), the Student-t CI of the mean step time (the stopping rule),
percentiles, warm-up and compile time, peak memory and, added by the parent (`derive`), FLOP/s
and MFU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from nnscale.measure.backends.base import Backend, get_backend
from nnscale.measure.lm import is_lm, lm_rates
from nnscale.measure.methodology import MeasurePolicy, Timed, measure
from nnscale.records import MEASURED_STATUSES, Measurement, Workload
from nnscale.records_stats import Host, Stats, Throughput, Timing
from nnscale.stats import Summary, throughput


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message`, at most 300 characters."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0].strip()}" if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def summary_timing(s: Summary, **more) -> Timing:
    """The timing block of a summary of step times (`more`: the point's other timing fields,
    warm-up, budget ...). Sweeps, DDP/FSDP and all-reduce points all build it here."""
    return Timing(
        median_ms=s.median_ms, mean_ms=s.mean_ms, stdev_ms=_finite(s.stdev_ms), min_ms=s.min_ms,
        max_ms=s.max_ms,
        mean_ci_low_ms=_finite(s.ci_low_ms), mean_ci_high_ms=_finite(s.ci_high_ms),  # the stopping rule
        median_ci_low_ms=_finite(s.median_ci_low_ms), median_ci_high_ms=_finite(s.median_ci_high_ms),
        p50_ms=s.p50_ms, p95_ms=s.p95_ms, p99_ms=s.p99_ms, rel_ci=_finite(s.rel_ci),
        confidence=s.confidence, iterations=s.n, outliers=s.outliers, **more)


def rate_throughput(s: Summary, samples_per_step: int) -> Throughput:
    """Samples/s from the median step time, with its CI (nnscale.stats.throughput)."""
    rate = throughput(s, samples_per_step)
    return Throughput(samples_per_s=_finite(rate.samples_per_s), samples_per_s_ci_low=_finite(rate.ci_low),
                      samples_per_s_ci_high=_finite(rate.ci_high))


def timed_stats(workload: Workload, timed: Timed, policy: MeasurePolicy) -> Stats:
    """The statistics of a measured point (docs/methodology.md, "The statistics record")."""
    s = timed.summary
    timing = summary_timing(
        s, target_rel_ci=policy.target_rel_ci, warmup_iters=timed.warmup_iters,
        warmup_s=timed.warmup_s, warmup_steady=timed.warmup_steady, measure_s=timed.measure_s,
        budget_s=policy.budget_s)
    return Stats(timing=timing, throughput=rate_throughput(s, workload.batch_size * workload.world_size))


def unstable_reason(timed: Timed, policy: MeasurePolicy) -> str:
    s = timed.summary
    if s.n < policy.min_iters:
        return (f"only {s.n} iterations within the {policy.budget_s:g} s budget "
                f"(at least {policy.min_iters} wanted)")
    ci = "n/a" if not math.isfinite(s.rel_ci) else f"±{100 * s.rel_ci:.1f} %"
    return (f"CI of the mean {ci} > target ±{100 * policy.target_rel_ci:g} % "
            f"after {s.n} iterations ({timed.measure_s:.0f} s)")


def measure_point(
    workload: Workload,
    policy: MeasurePolicy,
    *,
    backend: Backend | None = None,
    seed: int = 0,
    phase: Callable[[str], None] = lambda name: None,
) -> Measurement:
    """Measure `workload` here; OOM and errors come back as such points (module docstring)."""
    backend = backend or get_backend(workload.framework)
    failed: Measurement | None = None
    try:
        phase("setup")
        prepared = backend.prepare(workload, seed)
        phase("compile" if workload.compile else "first-step")
        first_ms = prepared.timer.time_ms(prepared.step)  # compilation, lazy init: not a sample
        phase("measure")
        timed = measure(prepared.step, prepared.timer, policy)
        peak = backend.peak_memory_bytes()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure of a point is stored, not raised
        status = "oom" if backend.is_oom(exc) else "error"
        failed = Measurement(workload, status, error=one_line(exc))
    if failed is not None:
        prepared = None  # drop the model and activations before giving memory back
        backend.close()
        return failed
    stats = timed_stats(workload, timed, policy)
    stats = replace(
        stats,
        timing=replace(stats.timing, first_step_ms=first_ms,
                       compile_s=first_ms / 1000.0 if workload.compile else None),
        compute=replace(stats.compute, peak_memory_bytes=peak),
        # framework_version, framework_mode and framework specifics: Host fields, each named there
        host=Host(threads=prepared.threads, device_name=prepared.device_name, **prepared.info),
    )
    status = "ok" if timed.stable else "unstable"
    error = "" if timed.stable else unstable_reason(timed, policy)
    return Measurement(workload, status, samples_ms=timed.samples_ms, stats=stats, error=error)


def derive(m: Measurement, flop_per_sample: int | None, peak_flop_per_s: float | None) -> Measurement:
    """Add achieved FLOP/s and MFU (model FLOPs utilisation, Chowdhery et al. 2022, "PaLM", app. B:
    achieved model FLOP/s over the peak) to a measured point; failed points are returned as they are.

    Model FLOPs are nnscale's count (docs/statistics.md), not what the kernels executed; the peak is
    the device's *measured* GEMM peak at the point's precision (`nnscale device`), None if unknown.
    """
    rate = m.stats.throughput.samples_per_s
    if m.status not in MEASURED_STATUSES or rate is None:
        return m
    achieved = flop_per_sample * rate if flop_per_sample else None
    mfu = achieved / peak_flop_per_s if achieved is not None and peak_flop_per_s else None
    stats = replace(m.stats, compute=replace(m.stats.compute, flop_per_sample=flop_per_sample,
                                             achieved_flop_per_s=achieved,
                                             peak_flop_per_s=peak_flop_per_s, mfu=mfu))
    if is_lm(m.workload.model):  # tokens/s beside sequences/s, from the combined rate (measure/lm.py)
        stats = replace(stats, throughput=lm_rates(m.workload, stats))
    return Measurement(m.workload, m.status, m.samples_ms, stats, m.error)
