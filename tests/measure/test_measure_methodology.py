"""The methodology with scripted timers: warm-up until steady, the CI stopping rule, the budget,
collective stop decisions, and the policy's checks. No framework, no real timing."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from nnscale.errors import UserError
from nnscale.measure.methodology import CpuTimer, MeasurePolicy, measure, steady_window


class ScriptedTimer:
    """Returns the scripted durations (ms) one after another, then `tail` forever."""

    def __init__(self, script, tail):
        self._it = itertools.chain(script, tail)
        self.calls = 0

    def time_ms(self, step):
        step()
        self.calls += 1
        return next(self._it)


def noisy(level: float, rel_sd: float, seed: int = 1):
    rng = random.Random(seed)
    return (level * (1 + rel_sd * rng.gauss(0, 1)) for _ in itertools.count())


def test_warmup_ends_when_steady_and_is_excluded():
    # 15 slow iterations (a cold cache), then steady at 10 ms with 1 % noise.
    warm = [50.0 - 2.5 * i for i in range(15)]
    timer = ScriptedTimer(warm, noisy(10.0, 0.01))
    t = measure(lambda: None, timer, MeasurePolicy(budget_s=5.0))
    assert t.warmup_steady and 15 <= t.warmup_iters <= 50
    assert max(t.samples_ms) < 15.0  # no warm-up sample leaked into the measurement
    assert t.stable and t.summary.rel_ci <= 0.02 and len(t.samples_ms) >= 10
    assert t.summary.n == len(t.samples_ms) and t.warmup_iters + len(t.samples_ms) == timer.calls


def test_warmup_is_bounded_by_count():
    timer = ScriptedTimer([], (100.0 * 0.97**i for i in itertools.count()))  # drifts 3 % per step
    t = measure(lambda: None, timer, MeasurePolicy(warmup_max_iters=25, budget_s=0.05))
    assert t.warmup_iters == 25 and not t.warmup_steady


@pytest.mark.xdist_group("timing")  # a wall-clock bound: not beside the other timed tests
def test_warmup_is_bounded_by_time():
    import time

    def slow():
        time.sleep(0.02)

    t = measure(slow, CpuTimer(), MeasurePolicy(warmup_max_s=0.1, budget_s=0.1, min_iters=2))
    assert t.warmup_s < 0.5 and t.warmup_iters <= 8


def test_stops_at_min_iters_when_already_precise():
    t = measure(lambda: None, ScriptedTimer([], noisy(5.0, 0.001)), MeasurePolicy(min_iters=12))
    assert t.stable and len(t.samples_ms) == 12


@pytest.mark.xdist_group("timing")  # a wall-clock bound: not beside the other timed tests
def test_noisy_point_runs_out_of_budget_and_is_flagged():
    import time

    rng = random.Random(4)
    timer = ScriptedTimer([], (rng.lognormvariate(1.0, 1.0) for _ in itertools.count()))
    t = measure(lambda: time.sleep(0.001), timer, MeasurePolicy(budget_s=0.2, warmup_max_iters=0))
    assert not t.stable
    assert t.measure_s >= 0.2 and t.measure_s < 0.5  # the budget, overrun by a check interval at most


def test_max_iters_bounds_a_fast_noisy_step():
    rng = random.Random(5)
    t = measure(lambda: None, ScriptedTimer([], (rng.lognormvariate(1.0, 1.0) for _ in itertools.count())),
                MeasurePolicy(max_iters=40, budget_s=60, warmup_max_iters=0))
    assert len(t.samples_ms) == 40 and not t.stable


def test_slow_step_stops_at_budget_with_two_samples():
    import time

    t = measure(lambda: time.sleep(0.06), CpuTimer(), MeasurePolicy(budget_s=0.05, warmup_max_iters=0))
    assert len(t.samples_ms) == 2 and not t.stable  # fewer than min_iters: never "stable"


def test_agree_is_called_at_the_same_iteration_counts_on_every_rank():
    """Ranks with different timings call `agree` after the same iterations and so stop together:
    the collective's answer, not the local vote, decides (the contract DDP builds on)."""

    def run(timer):
        log, votes, count = [], [], itertools.count(1)

        def agree(local_done):
            k = next(count)
            log.append(timer.calls)
            votes.append(local_done)
            return k in (5, 30)  # the collective ends warm-up at its 5th call, measuring at its 30th

        t = measure(lambda: None, timer, MeasurePolicy(budget_s=60), agree)
        return t, log, votes

    precise, log_a, votes_a = run(ScriptedTimer([], noisy(5.0, 0.0001, seed=2)))
    sloppy, log_b, votes_b = run(ScriptedTimer([], noisy(5.0, 0.5, seed=3)))
    assert log_a == log_b and len(log_a) == 30
    assert precise.warmup_iters == sloppy.warmup_iters == 5
    assert len(precise.samples_ms) == len(sloppy.samples_ms)
    assert votes_a != votes_b  # the local votes differed; the iteration counts did not


def test_steady_window_shrinks_for_slow_steps():
    p = MeasurePolicy(warmup_max_s=10.0, warmup_max_iters=50)
    assert steady_window(1.0, p) == 10
    assert steady_window(1000.0, p) == 5
    assert steady_window(4000.0, p) == 3


@pytest.mark.parametrize("field,value", [
    ("target_rel_ci", 0.0), ("target_rel_ci", 1.5), ("confidence", 1.0), ("min_iters", 1),
    ("max_iters", 5), ("budget_s", 0.0), ("budget_s", -3.0), ("budget_s", math.nan),
    ("warmup_max_s", -1.0), ("warmup_max_iters", -1),
])
def test_policy_rejects_bad_values_in_one_line(field, value):
    with pytest.raises(UserError) as e:
        MeasurePolicy(**{field: value})
    assert field in str(e.value) and "expected" in str(e.value) and "\n" not in str(e.value)


def test_policy_round_trips():
    p = MeasurePolicy(target_rel_ci=0.03, budget_s=7.0)
    assert MeasurePolicy.from_dict(p.to_dict()) == p


def test_budget_stretches_to_min_iters_at_the_warmup_pace_and_no_further():
    from nnscale.measure.methodology import stretched_budget_s

    p = MeasurePolicy(min_iters=5, budget_s=1.0, max_budget_stretch=3.0)
    assert stretched_budget_s(p, [900.0, 300.0, 300.0, 290.0]) == pytest.approx(5 * 0.300)
    assert stretched_budget_s(p, [100.0] * 5) == 1.0  # 5 steps fit: the budget as given
    assert stretched_budget_s(p, [2000.0] * 5) == 3.0  # 10 s needed: bounded at 3 x 1 s
    assert stretched_budget_s(p, []) == 1.0  # no warm-up: nothing to size by
    assert stretched_budget_s(MeasurePolicy(min_iters=5, budget_s=1.0), [2000.0] * 5) == 1.0


def test_a_slow_step_reaches_min_iters_with_a_stretched_budget():
    import time

    def step():
        time.sleep(0.04)

    base = MeasurePolicy(min_iters=5, budget_s=0.1, warmup_max_iters=3, warmup_max_s=1.0,
                         target_rel_ci=0.5)
    short = measure(step, CpuTimer(), base)
    stretched = measure(step, CpuTimer(), MeasurePolicy(**{**base.to_dict(), "max_budget_stretch": 4.0}))
    assert len(short.samples_ms) < 5 and not short.stable  # the budget ran out first
    assert len(stretched.samples_ms) >= 5


def test_steps_slower_than_the_warmup_still_reach_min_iters_within_the_stretch_bound():
    """The budget sized at the warm-up's pace is not where a short process stops: steps that turn
    slower after the warm-up (a VM's drift) go on to the hard bound, budget x stretch."""
    import time

    calls = []

    def step():  # warm-up at 20 ms a step, then 60 ms: 5 steps need 0.3 s, sized for 0.1 s
        calls.append(None)
        time.sleep(0.02 if len(calls) <= 3 else 0.06)

    policy = MeasurePolicy(min_iters=5, budget_s=0.1, warmup_max_iters=3, warmup_max_s=1.0,
                           target_rel_ci=0.5, max_budget_stretch=10.0)
    timed = measure(step, CpuTimer(), policy)
    assert len(timed.samples_ms) == 5  # min_iters reached, then stopped: its budget had run out
    assert timed.measure_s < 1.0  # well within 10 x 0.1 s

    capped = measure(step, CpuTimer(), MeasurePolicy(**{**policy.to_dict(), "max_budget_stretch": 2.0}))
    assert 2 <= len(capped.samples_ms) < 5 and not capped.stable  # the hard bound, 0.2 s, stops it
