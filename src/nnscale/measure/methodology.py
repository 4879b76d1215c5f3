"""How one point is timed: warm up until steady, then repeat until the confidence target or the budget.

This is the contract every backend and the data-parallel engine build on (no framework here; a
backend supplies the `Timer`):

1. **Warm-up.** Call the step and time it until the per-iteration time is steady — the steady-state
   detector of `nnscale.stats.steady_state_index` (sliding-window medians against the tail, after
   Georges, Buytaert & Eeckhout (2007), "Statistically rigorous Java performance evaluation",
   OOPSLA) finds no warm-up left in what it saw — or until `warmup_max_iters` / `warmup_max_s` run
   out. Warm-up samples are discarded. The first call of a compiled step (compilation) is *not*
   part of this: the caller times it separately and reports it as compile time.
2. **Measurement.** Repeat, timing every iteration, until the Student-t 95 % confidence interval of
   the mean iteration time is within ±`target_rel_ci` of the mean (the stopping rule of Georges et
   al. 2007, §4) with at least `min_iters` samples — or the budget `budget_s` (or `max_iters`) runs
   out, in which case the result is flagged not `stable`: stored as "unstable", never silently.
   With `max_budget_stretch` > 1, a process short of `min_iters` goes on to the stretched bound
   (`budget_s` x `max_budget_stretch`) before it stops.
3. **Collective stop.** With several processes (data parallel), every rank must run the same number
   of iterations or the collectives deadlock. So the decision "done?" is taken only at iteration
   counts that depend on nothing but the count, and each rank's local decision goes through
   `agree(local_done) -> global_done` (e.g. an all-reduce); without `agree` the local decision
   stands.

Stop checks are spaced geometrically (every ~5 % more samples, never fewer than every iteration
below `min_iters`), so the cost of checking stays logarithmic in the number of iterations and the
budget is overrun by at most ~5 %. All checks happen between timed calls: they never enter a sample.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Protocol

from nnscale.errors import UserError
from nnscale.stats import Summary, is_stable, mean_ci, steady_state_index, summarize

STEADY_WINDOW_MAX = 10  # samples per window of the steady-state detector (its own default)
STEADY_WINDOW_MIN = 3  # smallest window still worth a median; slow steps get short windows
CHECK_SPACING = 0.05  # after min_iters, check again after 5 % more samples
MIN_PROCESS_BUDGET_S = 0.2  # below this a process measures a handful of iterations at best
# Interference threshold, a share of the machine: the load average per core, the CPU share other
# processes used, or the steal share above it gets a warning (nnscale.environment.interference).
# 0.25: on a quiet 2-core VM these stay under 0.15 (load average 0.2: 0.1 per core); one busy core
# of two is 0.5.
INTERFERENCE_MAX = 0.25
WORKER_STARTS = ("fork", "spawn")  # MeasurePolicy.worker_start


def check_interference_max(value: float, what: str = "--interference-max") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise UserError(f"bad {what} {value!r}: expected a share of the machine in (0, 1], e.g. 0.25")


class Timer(Protocol):
    """Times one call of a step. CPU: perf_counter_ns around the call; CUDA: events + synchronize."""

    def time_ms(self, step: Callable[[], object]) -> float: ...


class CpuTimer:
    """Wall time of a synchronous call, with the monotonic nanosecond clock (PEP 564)."""

    __slots__ = ()

    def time_ms(self, step: Callable[[], object]) -> float:
        start = time.perf_counter_ns()
        step()
        return (time.perf_counter_ns() - start) / 1e6


@dataclass(frozen=True, slots=True)
class MeasurePolicy:
    """When to stop warming up and measuring. Times in seconds."""

    target_rel_ci: float = 0.02  # stop when the 95 % CI half-width of the mean is within ±2 %
    confidence: float = 0.95
    min_iters: int = 10
    max_iters: int = 100_000
    warmup_max_iters: int = 50
    warmup_max_s: float = 10.0
    budget_s: float = 30.0  # measurement phase of one point, shared by its first `processes`
    # The point is measured in `processes` fresh worker processes (each warms up on its own), more
    # up to `max_processes` while the interval across them is wider than the target
    # (`nnscale.measure.processes`). One process gives the old, within-process-only interval.
    processes: int = 3
    max_processes: int = 6
    # How each process starts: "fork" from a pre-imported interpreter where that is safe (torch on
    # CPU; `nnscale.measure.forkserver`), "spawn" a new interpreter every time (as pyperf does).
    worker_start: str = "fork"
    # Budget by need, inside a process: a process may run up to this multiple of its budget to
    # reach min_iters at the pace its warm-up showed (`stretched_budget_s`); 1: never. The study
    # sizes budgets from FLOP estimates, which miss slow small-batch steps by up to 2x here.
    max_budget_stretch: float = 1.0

    def __post_init__(self) -> None:
        checks = (
            ("target_rel_ci", 0.0 < self.target_rel_ci < 1.0, "a fraction in (0, 1), e.g. 0.02"),
            ("confidence", 0.0 < self.confidence < 1.0, "a probability in (0, 1), e.g. 0.95"),
            ("min_iters", self.min_iters >= 2, "an integer >= 2"),
            ("max_iters", self.max_iters >= self.min_iters, f"an integer >= min_iters ({self.min_iters})"),
            ("warmup_max_iters", self.warmup_max_iters >= 0, "an integer >= 0"),
            ("warmup_max_s", self.warmup_max_s >= 0.0, "seconds >= 0"),
            ("budget_s", self.budget_s > 0.0, "seconds > 0, e.g. 30"),
            ("processes", isinstance(self.processes, int) and self.processes >= 1,
             "an integer >= 1 (3 or more for an interval across processes)"),
            ("max_processes", isinstance(self.max_processes, int) and self.max_processes >= self.processes,
             f"an integer >= processes ({self.processes})"),
            ("worker_start", self.worker_start in WORKER_STARTS, " or ".join(WORKER_STARTS)),
            ("max_budget_stretch", self.max_budget_stretch >= 1.0, "a factor >= 1, e.g. 3"),
        )
        for name, ok, accepted in checks:
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value) or not ok:
                raise UserError(f"bad measurement {name} {value!r}: expected {accepted}")

    @property
    def process_budget_s(self) -> float:
        """The measurement budget of one of the point's processes."""
        return self.budget_s / self.processes

    def check_process_budget(self, what: str = "--budget") -> None:
        """UserError unless each of the point's processes gets at least MIN_PROCESS_BUDGET_S."""
        if self.budget_s < MIN_PROCESS_BUDGET_S * self.processes * (1 - 1e-9):  # 0.6 / 3 is 0.1999…
            raise UserError(
                f"{what} {self.budget_s:g} s is too small for {self.processes} processes per point: "
                f"each needs at least {MIN_PROCESS_BUDGET_S:g} s, so the minimum is "
                f"{MIN_PROCESS_BUDGET_S * self.processes:g} s (or give fewer --processes)")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> MeasurePolicy:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True, slots=True)
class Timed:
    """What `measure` found: the measured samples (warm-up excluded) and their summary."""

    samples_ms: tuple[float, ...]
    warmup_iters: int
    warmup_s: float
    stable: bool  # the CI target was met with at least min_iters samples
    summary: Summary
    warmup_steady: bool = True  # warm-up ended because the detector found it steady (not a bound)
    measure_s: float = 0.0  # wall time of the measurement phase
    warmup_ms: tuple[float, ...] = field(default=(), repr=False)  # discarded warm-up samples


def steady_window(first_ms: float, policy: MeasurePolicy) -> int:
    """Detector window: 10 samples, fewer when warm-up's bounds leave room for fewer than 2 windows."""
    by_count = policy.warmup_max_iters // 2
    by_time = int(policy.warmup_max_s * 1000.0 / max(first_ms, 1e-6)) // 2
    return max(STEADY_WINDOW_MIN, min(STEADY_WINDOW_MAX, by_count, by_time))


def _solo(local_done: bool) -> bool:
    return local_done


def warm_up(
    step: Callable[[], object],
    timer: Timer,
    policy: MeasurePolicy,
    agree: Callable[[bool], bool] = _solo,
) -> tuple[list[float], float, bool]:
    """Run the step until steady or a bound; (warm-up samples, seconds, ended steady)."""
    samples: list[float] = []
    start = time.perf_counter()
    window = STEADY_WINDOW_MAX
    while len(samples) < policy.warmup_max_iters:
        samples.append(timer.time_ms(step))
        n = len(samples)
        if n == 1:
            window = steady_window(samples[0], policy)
        steady = n >= 2 * window and steady_state_index(samples, window=window) is not None
        out_of_time = time.perf_counter() - start >= policy.warmup_max_s
        if agree(steady or out_of_time or n >= policy.warmup_max_iters):
            return samples, time.perf_counter() - start, steady
    return samples, time.perf_counter() - start, False


def stretched_budget_s(policy: MeasurePolicy, warmup_ms: list[float]) -> float:
    """The measurement budget: `policy.budget_s`, or more — up to `max_budget_stretch` times it —
    when min_iters steps at the pace of the warm-up's last steps (their median) would not fit."""
    if policy.max_budget_stretch <= 1.0 or not warmup_ms:
        return policy.budget_s
    tail = sorted(warmup_ms[-STEADY_WINDOW_MAX:])
    need_s = policy.min_iters * tail[len(tail) // 2] / 1000.0
    return min(max(policy.budget_s, need_s), policy.budget_s * policy.max_budget_stretch)


def measure(
    step: Callable[[], object],
    timer: Timer,
    policy: MeasurePolicy,
    agree: Callable[[bool], bool] | None = None,
) -> Timed:
    """Warm up, then time `step` until the CI target, the budget or max_iters (module docstring)."""
    agree = agree or _solo
    warm, warm_s, steady = warm_up(step, timer, policy, agree) if policy.warmup_max_iters else ([], 0.0, True)
    budget_s = stretched_budget_s(policy, warm)
    # The hard bound: steps slower than the warm-up's (a VM's drift, another process) may still
    # reach min_iters within it. Before, a process sized at the warm-up's pace stopped at its
    # budget with 4 iterations when its steps ran 20 % slower, which flagged a point of 10 processes
    # whose interval met its target (ResNet-50 training, `make run` on the 2-core VM, session 9).
    cap_s = policy.budget_s * policy.max_budget_stretch  # >= budget_s (stretched_budget_s)
    samples: list[float] = []
    start = time.perf_counter()
    next_check = 1
    met = False
    while True:
        samples.append(timer.time_ms(step))
        n = len(samples)
        if n < next_check:
            continue
        elapsed = time.perf_counter() - start
        met = False
        if n >= policy.min_iters:
            low, high = mean_ci(samples, policy.confidence)
            mean = math.fsum(samples) / n
            met = mean > 0 and (high - low) / 2.0 / mean <= policy.target_rel_ci
        # Below min_iters only the hard bound may stop (the budget itself with no stretch allowed),
        # and only once a spread can be computed (n >= 2).
        short = n < policy.min_iters
        over = (elapsed >= (cap_s if short else budget_s) and n >= 2) or n >= policy.max_iters
        if agree(met or over):
            break
        gap = 1 if n < policy.min_iters else max(1, int(n * CHECK_SPACING))
        next_check = min(policy.max_iters, n + gap)
    measure_s = time.perf_counter() - start
    summary = summarize(samples, policy.confidence)
    stable = n >= policy.min_iters and is_stable(summary, policy.target_rel_ci)
    return Timed(samples_ms=tuple(samples), warmup_iters=len(warm), warmup_s=warm_s, stable=stable,
                 summary=summary, warmup_steady=steady, measure_s=measure_s, warmup_ms=tuple(warm))
