"""Points measured in interleaved rounds: each point's processes spread over the whole measurement.

Why. A point's k processes used to run back to back, within 5-30 s once workers were forked
(measure/forkserver.py). This VM's speed drifts over minutes: in session 6 two `make run` studies
back to back differed by 12-19 % on every AlexNet point while each point's interval, built from
processes a few seconds apart, was narrower than that, and 4 of 20 points changed "significantly"
between the two runs (docs/benchmarks.md). The between-process spread can only cover the drift
the processes themselves saw. So, as pyperf spreads a benchmark over worker processes and as
`nnscale scale` interleaves its launches (distributed/launch_loop.py), the points go in rounds:
round 1 measures one process of every point, round 2 the next one of every point, and so on, the
order reversed every other round (A B C, C B A: each point's mean time in the sequence is the
same). A point's interval then spans the whole sweep's time, and what drifts is in it.

The rules per point are `run_processes`' (measure/processes.py: `settle`, `failed_point`): after
`processes` processes the point is combined; it is finished when tight or at `max_processes`; a
noisy point goes on into later rounds, one process per round, while the pace has room. A point
the pace has no room to start is deferred, not dropped: it is asked again every later round, and
dropped only once nothing else can be measured (a study dropped 6 of 24 points in its first round
on the pace of its first processes, +68 % over the estimates, then ended 5 minutes early: session
9, docs/benchmarks.md). A noisy point the pace refuses is parked, not finished: it is asked
again every later round, because the study's estimates are pessimistic and the room appears once
other points finish (with the point finished at the first refusal, the study of session 7 ended
about a minute early with 7 of 17 points just over their ±15 % target). Once every live point
is parked or deferred and refused, the deferred ones are dropped (`Pace.drop`), which leaves the
parked ones room to be asked again; with none deferred, the parked ones are finished as they are.
A failed process ends its point as that failure.

Durability. Every process that measured is committed as it ends (`Store.add_process`); a finished
point is stored, and its process rows deleted, in one transaction. A run stopped at any moment
(SIGKILL included) loses at most the process in flight: resumed, it reuses the finished points and
continues the others from their stored processes (they count for the rounds they were in).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nnscale.measure.processes import failed_point, settle
from nnscale.measure.runner import PointSpec
from nnscale.records import MEASURED_STATUSES, Measurement


class Pace:
    """What decides, while the rounds run, whether a point starts and whether a noisy point gets
    another process (the study's planner: study/plan.py `Pacer`). This default: every point is
    measured, a noisy one up to its `max_processes`. Points are named by their index in `specs`."""

    def may_start(self, i: int) -> bool:
        """May point i start now? False defers it: it is asked again in later rounds."""
        return True

    def drop(self, i: int) -> None:
        """Deferred point i is given up: nothing else could be measured and it still had no room."""

    def revise(self, i: int, spec: PointSpec, m: Measurement) -> PointSpec:
        """Point i's spec for its next processes, now that one of its processes measured `m` (the
        study sizes budgets from estimates; a measured step is better). Default: as it was."""
        return spec

    def more(self, i: int, k: int) -> bool:
        return True

    def resumed(self, i: int, processes: int) -> None:
        """Point `i` was started before the run was resumed and has `processes` stored."""

    def process_done(self, i: int, wall_s: float) -> None:
        """Process of point `i` ended after `wall_s` seconds."""

    def point_done(self, i: int) -> None:
        """Point `i` is finished (stored) or was never started."""


@dataclass(slots=True)
class _Point:
    spec: PointSpec
    done: list[Measurement] = field(default_factory=list)
    steals: list[float | None] = field(default_factory=list)
    wall_s: float = 0.0
    final: Measurement | None = None
    dropped: bool = False
    parked: bool = False  # noisy, and the pace had no room for another process when asked
    deferred: bool = False  # not started: the pace had no room for it when asked

    @property
    def live(self) -> bool:
        return self.final is None and not self.dropped


def measure_in_rounds(specs: Sequence[PointSpec], recorder, pace: Pace | None = None
                      ) -> list[Measurement]:
    """Measure `specs` into `recorder`'s run in interleaved rounds (module docstring); the
    finished points in the order of `specs` (those the pace dropped left out)."""
    pace = pace or Pace()
    stored = recorder.stored_processes()
    points = [_Point(spec) for spec in specs]
    for i, p in enumerate(points):
        key = p.spec.workload.key()
        if key in recorder.done:
            p.final = recorder.reuse(key)
            pace.point_done(i)
            continue
        for m, steal in stored.get(key, []):
            p.done.append(m)
            p.steals.append(steal)
        if p.done:
            pace.resumed(i, len(p.done))
            p.spec = pace.revise(i, p.spec, p.done[-1])
            _settle(recorder, pace, i, p)  # stopped between its last process and storing the point
    rnd = 0
    while any(p.live for p in points):
        order = list(enumerate(points))
        measured = False
        for i, p in order if rnd % 2 == 0 else reversed(order):
            if not p.live or len(p.done) > rnd:  # finished, or this round's process was stored before
                continue
            if p.parked:  # asked again each round: the other points' progress may have made room
                if not pace.more(i, len(p.done)):
                    continue
                p.parked = False
            if not p.done:
                p.deferred = not pace.may_start(i)
                if p.deferred:
                    continue
            _one_process(recorder, pace, points, i, rnd)
            measured = True
        if not measured and any(p.deferred for p in points if p.live):
            for i, p in enumerate(points):  # no room will appear: give the parked ones what is left
                if p.live and p.deferred:
                    p.dropped = True
                    pace.drop(i)
                    pace.point_done(i)
        elif not measured and all(p.parked for p in points if p.live):
            for i, p in enumerate(points):  # no room left for any of them: as they are
                if p.live:
                    p.final = recorder.finish(settle(p.spec.policy, p.done, p.steals,
                                                     lambda k: False), p.wall_s)
                    pace.point_done(i)
        rnd += 1
    return [p.final for p in points if p.final is not None]


def _one_process(recorder, pace: Pace, points: list[_Point], i: int, rnd: int) -> None:
    p = points[i]
    k = len(p.done)
    recorder.progress.point_start(p.spec.workload, detail=f"round {rnd + 1}, process {k + 1}")
    m, steal, wall = recorder.process(p.spec, k)
    p.wall_s += wall
    pace.process_done(i, wall)
    if m.status not in MEASURED_STATUSES:
        p.final = recorder.finish(failed_point(m, k), p.wall_s)
        pace.point_done(i)
    else:
        p.done.append(m)
        p.steals.append(steal)
        p.spec = pace.revise(i, p.spec, m)
        _settle(recorder, pace, i, p)
    left = sum(max(1, q.spec.policy.processes - len(q.done)) for q in points if q.live)
    recorder.progress.process_done(wall, left)  # a noisy point past k counts one more


def _settle(recorder, pace: Pace, i: int, p: _Point) -> None:
    """Finish point i if tight or at max_processes; park it if noisy and the pace has no room for
    another process now (it is asked again in later rounds, and the point finished as it is once
    no live point can have another)."""
    final = settle(p.spec.policy, p.done, p.steals)
    if final is None and len(p.done) >= p.spec.policy.processes and not pace.more(i, len(p.done)):
        p.parked = True
    elif final is not None:
        p.final = recorder.finish(final, p.wall_s)
        pace.point_done(i)
