"""Points in interleaved rounds: the order A B C, C B A, ...; a noisy point going on alone; a failed
process ending its point; a run stopped mid-round resumed from its stored processes, in a real
SQLite store (the study's kill test drives the whole thing from outside: tests/study)."""

from __future__ import annotations

import numpy as np
import pytest

from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.recorder import Recorder
from nnscale.measure.rounds import Pace, measure_in_rounds
from nnscale.measure.runner import PointSpec
from nnscale.records import Measurement, Workload
from nnscale.store import open_store


def spec(batch: int, **policy) -> PointSpec:
    w = Workload("test-tiny-mlp", "inference", batch, (3, 8, 8), threads=1)
    return PointSpec(w, MeasurePolicy(**{"budget_s": 3.0, "target_rel_ci": 0.02, "processes": 3,
                                         "max_processes": 6, **policy}), 60.0)


class Runner:
    """A worker per call: batch b's process i has level `levels(b, i)` ms, within-process noise
    0.05 ms; `fail` = (batch, process index) that runs out of memory; `stop_after` calls: Ctrl-C."""

    def __init__(self, levels=lambda b, i: 10.0, fail=None, stop_after=None):
        self.levels, self.fail, self.stop_after = levels, fail, stop_after
        self.calls: list[tuple[int, int]] = []  # (batch, index of the process within its point)
        self.rng = np.random.default_rng(5)

    def __call__(self, s: PointSpec) -> Measurement:
        if self.stop_after is not None and len(self.calls) == self.stop_after:
            raise KeyboardInterrupt
        b = s.workload.batch_size
        i = sum(1 for c in self.calls if c[0] == b)
        self.calls.append((b, i))
        assert s.policy.processes == 1 and s.policy.budget_s == pytest.approx(1.0)  # one process's share
        if (b, i) == self.fail:
            return Measurement(s.workload, "oom", error="fake oom")
        x = tuple(float(v) for v in self.levels(b, i) + 0.05 * self.rng.standard_normal(30))
        stats = {"samples_per_s": 1000 * b / float(np.median(x)), "iterations": 30, "threads": 1,
                 "device_name": "fake cpu"}
        return Measurement(s.workload, "ok", samples_ms=x, stats=stats)


def recorder(db: str, runner: Runner, run: str = "r") -> Recorder:
    store = open_store(db)
    run_id = store.get_or_create_run(run)
    done = {m.workload.key(): m for m in store.measurements(run) if m.status in ("ok", "unstable", "oom")}
    return Recorder(store, run_id, done, runner=runner)


def test_one_process_of_every_point_per_round_in_alternating_order(tmp_path):
    runner = Runner()
    ms = measure_in_rounds([spec(1), spec(2), spec(4)], recorder(str(tmp_path / "s.db"), runner))
    assert [b for b, _ in runner.calls] == [1, 2, 4, 4, 2, 1, 1, 2, 4]
    assert [m.workload.batch_size for m in ms] == [1, 2, 4] and all(m.status == "ok" for m in ms)
    assert all(m.stats.processes.processes == 3 for m in ms)
    assert open_store(str(tmp_path / "s.db")).process_results(1) == {}  # each point supersedes its processes


def test_a_noisy_point_goes_on_alone_in_later_rounds_and_a_refused_one_stops(tmp_path):
    # Batch 2's processes differ by 10 %: its interval stays wide; the others are tight after 3.
    runner = Runner(levels=lambda b, i: 10.0 * (1 + 0.1 * (i % 2)) if b == 2 else 10.0)
    ms = measure_in_rounds([spec(1), spec(2), spec(4)], recorder(str(tmp_path / "s.db"), runner))
    assert [b for b, _ in runner.calls] == [1, 2, 4, 4, 2, 1, 1, 2, 4, 2, 2, 2]
    noisy = ms[1]
    assert noisy.status == "unstable" and noisy.stats.processes.processes == 6  # max_processes

    class Refuse(Pace):
        def more(self, i, k):
            return False

    runner = Runner(levels=lambda b, i: 10.0 * (1 + 0.1 * (i % 2)) if b == 2 else 10.0)
    ms = measure_in_rounds([spec(1), spec(2), spec(4)], recorder(str(tmp_path / "t.db"), runner), Refuse())
    assert len(runner.calls) == 9 and ms[1].status == "unstable" and ms[1].stats.processes.processes == 3


def test_a_refused_noisy_point_waits_for_room_and_gets_it_once_the_others_finish(tmp_path):
    """The pace says no while the other points still owe processes and yes once they are done (as
    the study's Pacer does when its estimates were pessimistic): the noisy point is parked, not
    finished, and measured again later; with no room ever, it ends as it was."""
    noisy = lambda b, i: 10.0 * (1 + 0.1 * (i % 2)) if b == 2 else 10.0  # noqa: E731

    class Later(Pace):
        def __init__(self):
            self.finished, self.asked = set(), []

        def point_done(self, i):
            self.finished.add(i)

        def more(self, i, k):
            self.asked.append((i, k))
            return {0, 2} <= self.finished and k < 5  # room for two more, after the others

    runner, pace = Runner(levels=noisy), Later()
    ms = measure_in_rounds([spec(1), spec(2), spec(4)], recorder(str(tmp_path / "s.db"), runner), pace)
    # Round 3 (1 2 4): batch 2 refused and parked while 4 was not done; 1 and 4 finish; then 2 alone.
    assert [b for b, _ in runner.calls] == [1, 2, 4, 4, 2, 1, 1, 2, 4, 2, 2]
    assert pace.asked[0] == (1, 3) and ms[1].stats.processes.processes == 5
    assert ms[1].status == "unstable"  # at 5 the pace said no, with nothing else live: finished

    class Never(Pace):
        def more(self, i, k):
            return False

    runner = Runner(levels=noisy)
    ms = measure_in_rounds([spec(1), spec(2), spec(4)], recorder(str(tmp_path / "t.db"), runner), Never())
    assert len(runner.calls) == 9 and ms[1].status == "unstable" and ms[1].stats.processes.processes == 3
    stored = {m.workload.batch_size: m for m in open_store(str(tmp_path / "t.db")).measurements("r")}
    assert stored[2].status == "unstable" and stored[2].samples_ms == ms[1].samples_ms


def test_a_failed_process_ends_its_point_and_the_others_go_on(tmp_path):
    runner = Runner(fail=(2, 1))
    ms = measure_in_rounds([spec(1), spec(2), spec(4)], recorder(str(tmp_path / "s.db"), runner))
    assert [b for b, _ in runner.calls] == [1, 2, 4, 4, 2, 1, 1, 4]
    assert ms[1].status == "oom" and ms[1].error == "fake oom (process 2 of the point; 1 had measured)"
    assert ms[0].status == ms[2].status == "ok"


def test_a_pace_that_refuses_a_start_defers_the_point_and_drops_it_once_nothing_else_runs(tmp_path):
    class NoSecond(Pace):
        def __init__(self):
            self.asked, self.dropped = [], []

        def may_start(self, i):
            self.asked.append(i)
            return i != 1

        def drop(self, i):
            self.dropped.append(i)

    runner, pace = Runner(), NoSecond()
    ms = measure_in_rounds([spec(1), spec(2), spec(4)], recorder(str(tmp_path / "s.db"), runner), pace)
    assert [m.workload.batch_size for m in ms] == [1, 4] and 2 not in {b for b, _ in runner.calls}
    # Asked in round 1 and in each later round (3 rounds of 1 and 4), then once more with nothing
    # else left to measure: dropped then.
    assert pace.asked.count(1) == 4 and pace.dropped == [1]


def test_a_deferred_point_starts_when_the_pace_has_room_later(tmp_path):
    class Later(Pace):
        def __init__(self):
            self.finished = set()

        def may_start(self, i):
            return i != 1 or 0 in self.finished  # room for batch 2 once batch 1 is done

        def point_done(self, i):
            self.finished.add(i)

    runner = Runner()
    ms = measure_in_rounds([spec(1), spec(2), spec(4)], recorder(str(tmp_path / "s.db"), runner), Later())
    # Rounds 1-2 measure 1 and 4; in round 3 batch 1 finishes and 2 starts right after it, then
    # goes on in rounds 4 and 5.
    assert [b for b, _ in runner.calls] == [1, 4, 4, 1, 1, 2, 4, 2, 2]
    assert [m.workload.batch_size for m in ms] == [1, 2, 4]
    assert all(m.stats.processes.processes == 3 for m in ms)


def test_stopped_mid_round_it_resumes_from_the_stored_processes(tmp_path):
    db = str(tmp_path / "s.db")
    first = Runner(stop_after=5)  # rounds: 1 2 4 | 4 2 <stop>
    with pytest.raises(KeyboardInterrupt):
        measure_in_rounds([spec(1), spec(2), spec(4)], recorder(db, first))
    stored = open_store(db).process_results(1)
    assert {k: len(v) for k, v in stored.items()} == {
        spec(1).workload.key(): 1, spec(2).workload.key(): 2, spec(4).workload.key(): 2}
    assert open_store(db).measurements("r") == []  # no point was finished
    second = Runner()
    ms = measure_in_rounds([spec(1), spec(2), spec(4)], recorder(db, second))
    # Only what was missing: batch 1's second process (round 2), then round 3.
    assert second.calls == [(1, 0), (1, 1), (2, 0), (4, 0)]
    assert all(m.stats.processes.processes == 3 for m in ms)
    kept = [m.samples_ms for m, _ in stored[spec(2).workload.key()]]
    assert ms[1].samples_ms[:60] == kept[0] + kept[1]  # the stored processes are the point's first two
    # Their start times came back with them, before the resumed ones' (drift over the run).
    before = [m.stats.processes.process_started_at_s[0] for m, _ in stored[spec(2).workload.key()]]
    started = ms[1].stats.processes.process_started_at_s
    assert started[:2] == tuple(before) and list(started) == sorted(started)
    assert open_store(db).process_results(1) == {}


def test_the_pace_revises_a_points_spec_for_its_next_processes_and_on_resume(tmp_path):
    from dataclasses import replace

    class Resize(Pace):
        def __init__(self):
            self.seen = []

        def revise(self, i, s, m):
            self.seen.append((i, len(m.samples_ms)))
            return replace(s, timeout_s=s.timeout_s + 1) if i == 0 else s

    timeouts = []

    class Recording(Runner):
        def __call__(self, s):
            m = super().__call__(s)  # (raises where it stops: that call is not counted)
            timeouts.append((s.workload.batch_size, s.timeout_s))
            return m

    db = str(tmp_path / "s.db")
    with pytest.raises(KeyboardInterrupt):
        measure_in_rounds([spec(1), spec(2)], recorder(db, Recording(stop_after=2)), Resize())
    pace = Resize()
    measure_in_rounds([spec(1), spec(2)], recorder(db, Recording()), pace)
    # Batch 1's spec grew by 1 s after each of its processes, the stored one included (resume).
    assert [t for b, t in timeouts if b == 1] == [60.0, 61.0, 62.0]
    assert [t for b, t in timeouts if b == 2] == [60.0, 60.0, 60.0]
    assert pace.seen[0] == (0, 30) and pace.seen.count((1, 30)) == 3
