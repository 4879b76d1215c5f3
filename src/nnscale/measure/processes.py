"""One point across several fresh worker processes: the interval that covers run-to-run variation.

A point's iterations in one process share that process's heap layout, its cores, caches and clock;
the next fresh process sits elsewhere, and on the 2-core development VM six fresh processes of one
point differed by 16 % while each claimed ±1.5 .. ±7.9 % (docs/methodology.md). So a point is
measured in `policy.processes` (k ≥ 3 by default) fresh workers, each with its own warm-up and
`budget_s / processes` of measurement, and the point's estimate and 95 % CI combine both levels
(`nnscale.stats.hierarchical_ci`: within-process noise by a bootstrap over each process's
iterations, between-process spread over the processes). Sequentially: while that interval is wider
than the target, another process is measured, up to `max_processes` — noisy points get more, quiet
ones stop at k. pyperf does the same with its worker processes (20 by default).

The hypervisor's steal share (`/proc/stat`) is read around every process and stored per point.

What is stored (fields of the typed `Measurement.stats`, records_stats.py; docs/methodology.md):
- `timing.median_ms`: the estimate, the mean of the per-process medians;
- `timing.mean_ci_low/high_ms`, `timing.median_ci_low/high_ms`: its CI; `timing.rel_ci` its
  half-width over the estimate (the stability target applies to it); `throughput.samples_per_s`
  and its CI through batch/t (a decreasing map: bounds swap);
- the `processes` block: `processes`, `process_medians_ms`, `process_iterations`, `within_sd_ms`,
  `between_sd_ms`, `between_share`, `bootstrap_se_ms`, `rel_ci_within` (the median of the
  processes' own within-process rel. CIs: what one process alone would have claimed),
  `steal_share` (largest of the processes), `process_steal_share`, `process_started_at_s`;
- pooled-iteration statistics (mean, stdev, min, max, percentiles, outliers, iterations): all
  processes' samples, which `samples_ms` holds in process order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

from nnscale.environment import cpu_jiffies, steal_share
from nnscale.measure.runner import PointSpec
from nnscale.records import MEASURED_STATUSES, Measurement
from nnscale.records_stats import Processes
from nnscale.stats import hierarchical_ci, summarize

# Per-process facts that are the same kind of number in every process: summed or maxed, not averaged.
_SUMMED = ("warmup_iters", "warmup_s", "measure_s")


def process_spec(spec: PointSpec) -> PointSpec:
    """What one worker measures: the point with one process's share of the budget."""
    p = spec.policy
    return replace(spec, policy=replace(p, budget_s=p.process_budget_s, processes=1, max_processes=1))


def run_processes(spec: PointSpec, runner: Callable[[PointSpec], Measurement],
                  more: Callable[[int], bool] = lambda k: True) -> Measurement:
    """Measure `spec` in k fresh processes via `runner`, back to back (module docstring; a study
    interleaves its points' processes instead: measure/rounds.py, with the same rules).

    `more(k)`: may a (k+1)-th process be started? (A study's planner answers it for points in
    rounds: `rounds.Pace.more`.) A failed process (oom, error, timeout) ends the point as that
    failure: the same workload failing once is a fact about it.
    """
    one = process_spec(spec)
    done: list[Measurement] = []
    steals: list[float | None] = []
    while True:
        m, steal = measure_process(one, runner)
        steals.append(steal)
        if m.status not in MEASURED_STATUSES:
            return failed_point(m, len(done))
        done.append(m)
        final = settle(spec.policy, done, steals, more)
        if final is not None:
            return final


def measure_process(one: PointSpec, runner: Callable[[PointSpec], Measurement]
                    ) -> tuple[Measurement, float | None]:
    """One process (`one`: a `process_spec`) through `runner`, and the hypervisor's steal share
    around it (/proc/stat)."""
    before, started = cpu_jiffies(), time.time()
    m = runner(one)
    # Its start time, kept in its stored process row (a resumed point has it too) and the point.
    m = replace(m, stats=replace(m.stats, processes=replace(m.stats.processes,
                                                            process_started_at_s=(started,))))
    return m, steal_share(before, cpu_jiffies())


def failed_point(m: Measurement, measured: int) -> Measurement:
    """A point whose process `measured + 1` failed: that failure, saying how many had measured."""
    if not measured:
        return m
    return replace(m, error=f"{m.error} (process {measured + 1} of the point; {measured} had measured)")


def settle(policy, done: list[Measurement], steals: list[float | None],
           more: Callable[[int], bool] = lambda k: True) -> Measurement | None:
    """The point combined from its processes so far, if it is finished: at least `processes` of
    them and tight, or `max_processes` reached, or `more` refusing another; None: measure another."""
    if len(done) < policy.processes:
        return None
    combined = combine(done, policy.target_rel_ci, policy.confidence, policy.min_iters, steals)
    if combined.status == "ok" or len(done) >= policy.max_processes or not more(len(done)):
        return combined
    return None


def combine(ms: list[Measurement], target_rel_ci: float, confidence: float = 0.95,
            min_iters: int = 2, steals: list[float | None] | None = None) -> Measurement:
    """The point from its processes' measurements (module docstring)."""
    steals = steals or [None] * len(ms)
    known = [s for s in steals if s is not None]
    starts = sorted({m.stats.processes.worker_start for m in ms} - {None})
    started = tuple((m.stats.processes.process_started_at_s or (None,))[0] for m in ms)
    steal = {"steal_share": max(known) if known else None, "process_steal_share": tuple(steals),
             "worker_start": ",".join(starts) or None,
             "process_started_at_s": started if any(t is not None for t in started) else None}
    if len(ms) == 1:  # one process: its own (within-process) interval, as before
        m = ms[0]
        return replace(m, stats=replace(m.stats, processes=replace(
            m.stats.processes, processes=1, rel_ci_within=m.stats.timing.rel_ci, **steal)))
    w = ms[0].workload
    groups = [m.samples_ms for m in ms]
    h = hierarchical_ci(groups, confidence)
    pooled = summarize([x for g in groups for x in g], confidence)
    s0 = ms[0].stats  # device, threads, framework info: the same in every process
    timings = [m.stats.timing for m in ms]
    peaks = [m.stats.compute.peak_memory_bytes for m in ms if m.stats.compute.peak_memory_bytes is not None]
    firsts = sorted(t.first_step_ms for t in timings if t.first_step_ms is not None)
    within = sorted(t.rel_ci for t in timings if t.rel_ci is not None)
    c = 1000.0 * w.batch_size * w.world_size
    low, high = h.ci_low_ms, h.ci_high_ms
    timing = replace(
        s0.timing, **{key: sum(getattr(t, key) or 0 for t in timings) for key in _SUMMED},
        warmup_steady=all(t.warmup_steady is not False for t in timings),
        first_step_ms=firsts[len(firsts) // 2] if firsts else None,
        median_ms=h.estimate_ms, median_ci_low_ms=low, median_ci_high_ms=high,
        mean_ci_low_ms=low, mean_ci_high_ms=high, rel_ci=h.rel_ci,
        mean_ms=pooled.mean_ms, stdev_ms=pooled.stdev_ms if pooled.n > 1 else None,
        min_ms=pooled.min_ms, max_ms=pooled.max_ms,
        p50_ms=pooled.p50_ms, p95_ms=pooled.p95_ms, p99_ms=pooled.p99_ms,
        iterations=pooled.n, outliers=pooled.outliers, confidence=confidence)
    rates = replace(s0.throughput, samples_per_s=c / h.estimate_ms,
                    samples_per_s_ci_low=c / high if high > 0 else None,
                    samples_per_s_ci_high=c / low if low > 0 else None)  # low <= 0: no upper bound
    procs = Processes(processes=h.processes, process_medians_ms=tuple(h.process_medians_ms),
                      process_iterations=tuple(len(g) for g in groups),
                      within_sd_ms=_finite(h.within_sd_ms), between_sd_ms=_finite(h.between_sd_ms),
                      between_share=_finite(h.between_share), bootstrap_se_ms=_finite(h.bootstrap_se_ms),
                      rel_ci_within=within[len(within) // 2] if within else None, **steal)
    compute = replace(s0.compute, peak_memory_bytes=max(peaks) if peaks else None)
    stats = replace(s0, timing=timing, throughput=rates, processes=procs, compute=compute)
    short = [len(g) for g in groups if len(g) < min_iters]
    stable = math.isfinite(h.rel_ci) and h.rel_ci <= target_rel_ci and not short
    if stable:
        error = ""
    elif short:
        error = (f"{len(short)} of {len(ms)} processes measured fewer than {min_iters} iterations "
                 f"(budget {timing.budget_s or 0:g} s each)")
    else:
        error = (f"CI across {len(ms)} processes ±{100 * h.rel_ci:.1f} % > target "
                 f"±{100 * target_rel_ci:g} % (processes differ by {_spread(h.process_medians_ms)}; "
                 f"within one process ±{100 * (procs.rel_ci_within or math.nan):.1f} %)")
    samples = tuple(x for g in groups for x in g)
    return Measurement(w, "ok" if stable else "unstable", samples_ms=samples, stats=stats, error=error)


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _spread(medians: tuple[float, ...]) -> str:
    lo, hi = min(medians), max(medians)
    return f"{100 * (hi - lo) / lo:.1f} %"
