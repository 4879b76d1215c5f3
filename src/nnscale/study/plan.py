"""Budget by need: which points a study measures, with what policy, and what it drops to fit.

A study's budget used to be shared out evenly: every point got the same few seconds, so a slow
point (ResNet-50 training, 1.9 s a step here) could not reach even `min_iters` iterations and half
the points ended unstable. Instead, each point is planned to be able to reach its target:

1. **Cost of a point.** Its step time is estimated from nnscale's FLOP count and the device's
   measured GEMM peak (`nnscale device`, step 2) at an efficiency of EFFICIENCY, plus a per-step
   overhead. On the 2-core development VM (fp32 peak 118 GFLOP/s) the seed's nets reached 0.66-0.87
   of it: ResNet-50 training batch 8 ≈ 4.2 img/s, inference ≈ 12.4 img/s, GoogLeNet training ≈ 8.9,
   AlexNet training batch 16 ≈ 23 (bare loops, issue 12). One process costs a worker's start
   (its `FrameworkSpec.start_s`), the first step, warm-up (≤ WARMUP_STEPS steps) and `min_iters` steps
   of measurement; the point costs `processes` of those.
2. **Fit.** While the plan's cost is over the time the study has for sweeps, drop the largest batch
   size of the sweep (network × mode × framework) whose largest batch costs most — never a sweep's
   last batch: batch sizes go before networks. If one batch per sweep still does not fit, the budget
   is too small: a UserError says the minimum.
3. **Sequential, in rounds.** The points' processes run in interleaved rounds (measure/rounds.py:
   one process of every point per round, so each point's interval spans the study's time). Every
   process stops once its own interval is tight; a point stops after k processes once the interval
   across them is tight; a noisy point gets more processes, one per later round, while the study is
   ahead of its plan (`Pacer.more`). After each process the plan's estimates are scaled by how long
   the measured processes really took, and before a point's first process the points not started
   yet are fitted again, by the same rule: a point that no longer fits is deferred, asked again in
   later rounds, and dropped only once nothing else can be measured. Every deferral and drop is
   printed; the drops are reported. A point whose process measured a step far slower than its
   estimate gets the budgets of the measured step for its next processes (`Pacer.revise`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from nnscale.errors import UserError
from nnscale.measure.forkserver import FORKED_START_S
from nnscale.measure.frameworks import SPECS
from nnscale.measure.methodology import MIN_PROCESS_BUDGET_S, MeasurePolicy
from nnscale.measure.rounds import Pace
from nnscale.measure.runner import PointSpec, default_timeout_s
from nnscale.records import Measurement

EFFICIENCY = 0.75  # of the measured GEMM peak: the seed's nets reached 0.66-0.87 of it (the pacer corrects)
STEP_OVERHEAD_S = 0.002  # Python and dispatch per step, what a tiny net's step costs here
WARMUP_STEPS = 3  # slow steps: warm-up is bounded to about this many (the first step is apart)
STUDY_MIN_ITERS = 5  # per process; k processes give the point k x 5 iterations at least
FALLBACK_STEP_S = 0.05  # a net the FLOP counter cannot trace
# A process may stretch its budget this far to reach STUDY_MIN_ITERS at its warm-up's pace: the
# estimates miss small-batch steps by up to 2x (AlexNet training batch 2: 96 ms estimated, 325 ms
# measured), and a process of 4 iterations was a flagged point in every `make run` before. On the
# AMX VM (session 9) a point's first process, sized before any measurement, needed 3.6x its budget
# (ResNet-50 training batch 8: 1.16 s for 5 steps of 0.84 s) and one short process kept the point
# flagged through 10 processes; later processes are re-sized (Pacer.revise), the first cannot be.
BUDGET_STRETCH = 6.0
# A point whose first process measured a step this much slower than estimated gets its budgets
# re-sized from the measurement (Pacer.revise): on the 2-core AMX VM of session 9 the estimate at
# 0.75 of the bf16 GEMM peak (2.3 TFLOP/s) was 7.5x short for ResNet-50 training batch 8 (113 ms
# against 843 ms), and 4 of its 10 processes ended short of min_iters even at 3x their budget.
REVISE_FACTOR = 1.5


@dataclass(frozen=True, slots=True)
class PlannedPoint:
    framework: str
    net: str
    precision: str
    mode: str
    batch: int
    step_s: float  # estimated
    cost_s: float  # estimated, all its processes

    @property
    def sweep(self) -> tuple[str, str, str, str]:
        return self.framework, self.net, self.precision, self.mode

    def label(self) -> str:
        fw = "" if self.framework == "torch" else f"{self.framework} "
        return f"{fw}{self.net} {self.mode} batch {self.batch} ({self.precision})"


@dataclass(slots=True)
class Plan:
    points: list[PlannedPoint]
    dropped: list[tuple[PlannedPoint, str]] = field(default_factory=list)
    available_s: float = 0.0
    processes: int = 3

    @property
    def cost_s(self) -> float:
        return sum(p.cost_s for p in self.points)

    def to_dict(self) -> dict:
        """What the run's environment stores (the report's environment table shows it)."""
        return {"processes_per_point": self.processes,
                "available_s": round(self.available_s, 1), "planned_s": round(self.cost_s, 1),
                "points": [f"{p.label()}: ~{p.cost_s:.0f} s" for p in self.points],
                "dropped": [f"{p.label()}: {why}" for p, why in self.dropped]}

    def lines(self) -> list[str]:
        head = (f"plan: {len(self.points)} points x {self.processes} processes, ~{self.cost_s:.0f} s "
                f"of the {self.available_s:.0f} s for sweeps")
        out = [head]
        out += [f"  dropped {p.label()}: {why}" for p, why in self.dropped]
        return out


def step_estimate_s(flop_per_sample: int | None, batch: int, peak_flop_per_s: float | None) -> float:
    if not flop_per_sample or not peak_flop_per_s:
        return FALLBACK_STEP_S * batch ** 0.5
    return flop_per_sample * batch / (EFFICIENCY * peak_flop_per_s) + STEP_OVERHEAD_S


def warmup_bound_s(step_s: float) -> float:
    return max(0.5, min(10.0, WARMUP_STEPS * step_s))


def process_cost_s(framework: str, step_s: float, forked: bool = False) -> float:
    """One process: start (a new interpreter, or a fork of a pre-imported one: measure/forkserver),
    first step, warm-up (steady after ~20 fast steps, else its bound) and measurement (min_iters
    steps when tight at once, up to its budget when noisy: ~7 steps)."""
    warm = min(warmup_bound_s(step_s), 20 * step_s)
    measure = max(2 * MIN_PROCESS_BUDGET_S, (STUDY_MIN_ITERS + 2) * step_s)
    start = FORKED_START_S if forked else spawn_start_s(framework)
    return start + step_s + warm + measure


def spawn_start_s(framework: str) -> float:
    """A new interpreter's start-up with the framework loaded (`FrameworkSpec.start_s`)."""
    return SPECS[framework].start_s if framework in SPECS else SPECS["torch"].start_s


def point_policy(step_s: float, target_rel_ci: float, processes: int, max_processes: int) -> MeasurePolicy:
    """A point's policy from its estimated step: room for min_iters per process, twice over."""
    per_process = max(1.0, 2.0 * STUDY_MIN_ITERS * step_s)
    return MeasurePolicy(target_rel_ci=target_rel_ci, min_iters=STUDY_MIN_ITERS,
                         warmup_max_s=warmup_bound_s(step_s),
                         budget_s=processes * per_process, processes=processes,
                         max_processes=max_processes, max_budget_stretch=BUDGET_STRETCH)


def make_point(framework, net, precision, mode, batch, flops, peak, processes,
               forked: bool = False) -> PlannedPoint:
    step = step_estimate_s(flops, batch, peak)
    return PlannedPoint(framework, net, precision, mode, batch, step,
                        processes * process_cost_s(framework, step, forked))


def fit(plan: Plan, available_s: float, scale: float = 1.0) -> list[PlannedPoint]:
    """Drop batch sizes (module docstring, step 2) until `scale` x the plan fits; what was dropped."""
    dropped = []
    while scale * plan.cost_s > available_s:
        groups: dict[tuple, list[PlannedPoint]] = {}
        for p in plan.points:
            groups.setdefault(p.sweep, []).append(p)
        candidates = [max(ps, key=lambda p: p.batch) for ps in groups.values() if len(ps) > 1]
        if not candidates:
            break
        victim = max(candidates, key=lambda p: p.cost_s)
        plan.points.remove(victim)
        plan.dropped.append((victim, f"~{scale * victim.cost_s:.0f} s does not fit the budget"))
        dropped.append(victim)
    return dropped


def make_plan(points: list[PlannedPoint], available_s: float, processes: int, budget_s: float) -> Plan:
    """The study's plan: `points` in order, fitted to `available_s` (UserError if it cannot fit)."""
    plan = Plan(list(points), available_s=available_s, processes=processes)
    fit(plan, available_s)
    if plan.cost_s > available_s:
        minimum = math.ceil(budget_s - available_s + plan.cost_s)
        raise UserError(
            f"budget {budget_s:g} s is too small for {processes} processes per point: even one batch "
            f"size per sweep needs about {plan.cost_s:.0f} s of measuring, so the minimum is about "
            f"{minimum} s (give --budget {minimum} or more, or a study with fewer nets)")
    return plan


class Pacer(Pace):
    """Keeps the study on its plan while its points are measured in interleaved rounds
    (measure/rounds.py; module docstring, step 3). `points[i]` is the plan's point measured as the
    rounds' point i; `overhead_s()`: seconds spent so far on what the plan sets aside (starting the
    fork server's images), left out of the processes' walls."""

    def __init__(self, plan: Plan, points: list[PlannedPoint], clock, notify=lambda line: None,
                 overhead_s=lambda: 0.0) -> None:
        self.plan, self.points, self.clock, self.notify = plan, list(points), clock, notify
        self.overhead_s, self._overhead0 = overhead_s, overhead_s()
        self.start = clock()
        self.processes = {i: 0 for i in range(len(self.points))}  # measured here, per point
        self.waiting = set(self.processes)  # not started yet: these may still be dropped
        self.deferred: set[int] = set()  # waiting, and refused a start at least once
        self.finished: set[int] = set()
        self.estimated_done = self.actual_done = 0.0

    def scale(self) -> float:
        """Measured / estimated time of the processes measured so far (1 before the first)."""
        if self.estimated_done <= 0:
            return 1.0
        return max(0.5, self.actual_done / self.estimated_done)

    def left_s(self) -> float:
        return self.plan.available_s - (self.clock() - self.start)

    def unit_s(self, i: int) -> float:
        """The estimate of one process of point i."""
        return self.points[i].cost_s / max(1, self.plan.processes)

    def owed_s(self) -> float:
        """Estimated seconds of the processes the started, unfinished points still need."""
        return sum(max(0, self.plan.processes - self.processes[i]) * self.unit_s(i)
                   for i in self.processes if i not in self.waiting and i not in self.finished)

    def _pace_note(self) -> str:
        return f"the processes so far took {100 * (self.scale() - 1):+.0f} % against their estimates"

    def may_start(self, i: int) -> bool:
        """Before a point's first process: re-fit the points not started yet into what the started
        ones leave; False (not now) if point i is one the fit would drop. It stays in the plan and
        is asked again next round (measure/rounds.py): the first processes' pace is a poor guide to
        the study's (session 9: +68 % in round 1, and the study then ended 5 minutes early)."""
        waiting = [self.points[j] for j in sorted(self.waiting)]
        left = self.left_s() - self.scale() * self.owed_s()
        rest = Plan(waiting, available_s=left, processes=self.plan.processes)
        if any(q is self.points[i] for q in fit(rest, left, self.scale())):
            if i not in self.deferred:
                self.deferred.add(i)
                self.notify(f"deferred {self.points[i].label()}: no room for it yet ({self._pace_note()})"
                            "; it starts if room appears")
            return False
        self.waiting.discard(i)
        if i in self.deferred:
            self.deferred.discard(i)
            self.notify(f"started {self.points[i].label()}, deferred before: there is room now")
        return True

    def drop(self, i: int) -> None:
        """Deferred point i is given up (measure/rounds.py): recorded and said as a drop."""
        q = self.points[i]
        why = f"dropped while running: no room left for it ({self._pace_note()})"
        self.waiting.discard(i)
        self.deferred.discard(i)
        self.finished.add(i)
        self.plan.points.remove(q)
        self.plan.dropped.append((q, why))
        self.notify(f"dropped {q.label()} to stay within the budget ({why})")

    def resumed(self, i: int, processes: int) -> None:
        """Started before the resume: no longer droppable, owes only its remaining processes (and
        its stored processes are no evidence about this run's pace)."""
        self.waiting.discard(i)
        self.processes[i] = processes

    def process_done(self, i: int, wall_s: float) -> None:
        overhead = self.overhead_s()
        wall_s -= overhead - self._overhead0  # an image started during it: set aside in the plan
        self._overhead0 = overhead
        self.processes[i] += 1
        self.estimated_done += self.unit_s(i)
        self.actual_done += max(0.0, wall_s)

    def point_done(self, i: int) -> None:
        self.waiting.discard(i)  # reused from a resumed run: never started here
        self.finished.add(i)

    def more(self, i: int, k: int) -> bool:
        """May noisy point i start process k+1? Only with slack beyond what the rest still needs."""
        waiting = sum(self.points[j].cost_s for j in self.waiting)
        rest = self.scale() * (self.owed_s() + waiting)
        return self.left_s() - rest > 2 * self.unit_s(i)

    def revise(self, i: int, spec: PointSpec, m: Measurement) -> PointSpec:
        """Budget by need, from the point's own measurement: once a process measured a step over
        REVISE_FACTOR x the estimate, the point's policy (per-process budget, warm-up bound) and
        timeout are those of the measured step, and its remaining processes are costed so."""
        median_ms = m.stats.timing.median_ms
        q = self.points[i]
        if not median_ms or median_ms / 1e3 <= REVISE_FACTOR * q.step_s:
            return spec
        step_s = median_ms / 1e3
        old = spec.policy
        sized = point_policy(step_s, old.target_rel_ci, old.processes, old.max_processes)
        policy = replace(old, budget_s=sized.budget_s, warmup_max_s=sized.warmup_max_s)
        # The timeout grows by what the worker's bounds grew (start-up and compilation stay).
        per_process = lambda p: default_timeout_s(replace(p, budget_s=p.process_budget_s))  # noqa: E731
        grown = per_process(policy) - per_process(old)
        unit = self.unit_s(i) + process_cost_s(q.framework, step_s) - process_cost_s(q.framework, q.step_s)
        revised = replace(q, step_s=step_s, cost_s=self.plan.processes * unit)
        self.points[i] = revised
        self.plan.points = [revised if p is q else p for p in self.plan.points]
        if policy == old:  # the floors (1 s a process, 0.5 s of warm-up) hold it already: only costed
            return spec
        self.notify(f"re-sized {q.label()}: its step measured {median_ms:.0f} ms against "
                    f"{1e3 * q.step_s:.0f} ms estimated; {policy.process_budget_s:.1f} s per process")
        return replace(spec, policy=policy, timeout_s=spec.timeout_s + max(0.0, grown))
