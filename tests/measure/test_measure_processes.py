"""A point across fresh processes: k processes per point, more for a noisy one, the combined
interval and its components, failures, the budget check; and k real workers on a tiny net."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from measure_helpers import SHORT
from nnscale.errors import UserError
from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.processes import combine, run_processes
from nnscale.measure.runner import PointSpec, run_point
from nnscale.records import Measurement, Workload

W = Workload("test-tiny-mlp", "inference", 4, (3, 8, 8), threads=1)


class Processes:
    """A runner whose i-th process has level levels[i] ms and within-process noise sd ms."""

    def __init__(self, levels, sd=0.05, n=40, fail_at=None):
        self.levels, self.sd, self.n, self.fail_at = levels, sd, n, fail_at
        self.specs = []
        self.rng = np.random.default_rng(3)

    def __call__(self, spec):
        i = len(self.specs)
        self.specs.append(spec)
        if i == self.fail_at:
            return Measurement(spec.workload, "oom", error="fake oom")
        x = tuple(float(v) for v in self.levels[i] + self.sd * self.rng.standard_normal(self.n))
        med = float(np.median(x))
        stats = {"samples_per_s": 4000 / med, "step_time_ms": med, "rel_ci": 0.004, "iterations": self.n,
                 "device_name": "fake cpu", "threads": 1, "warmup_iters": 5, "measure_s": 0.5,
                 "first_step_ms": 30.0, "peak_memory_bytes": 1000 + i}
        return Measurement(spec.workload, "ok", samples_ms=x, stats=stats)


def spec(w=W, **policy):
    return PointSpec(w, MeasurePolicy(**{"budget_s": 3.0, **policy}), 60.0)


def test_k_processes_each_with_its_share_of_the_budget_and_a_combined_interval():
    runner = Processes([10.0, 10.02, 9.98, 10.01])
    m = run_processes(spec(processes=3, target_rel_ci=0.02), runner)
    assert len(runner.specs) == 3
    assert all(s.policy.budget_s == 1.0 and s.policy.processes == 1 for s in runner.specs)
    s = m.stats
    assert m.status == "ok" and s.processes.processes == 3 and len(s.processes.process_medians_ms) == 3
    assert s.processes.process_iterations == (40, 40, 40) and len(m.samples_ms) == 120
    assert s.timing.mean_ci_low_ms < s.timing.median_ms < s.timing.mean_ci_high_ms
    assert s.throughput.samples_per_s_ci_low < s.throughput.samples_per_s < s.throughput.samples_per_s_ci_high
    assert s.throughput.samples_per_s == pytest.approx(4000 / s.timing.median_ms)
    assert s.compute.peak_memory_bytes == 1002 and s.timing.warmup_iters == 15
    assert len(s.processes.process_steal_share) == 3
    started = s.processes.process_started_at_s  # each process's start, in order
    assert len(started) == 3 and list(started) == sorted(started)
    assert time.time() - 60 < started[0] <= started[-1] <= time.time()


def test_processes_that_differ_widen_the_interval_and_get_more_processes():
    # The six medians (img/s at batch 16 -> ms): processes 16 % apart.
    levels = [16000 / r for r in (23.1, 24.2, 24.9, 25.5, 27.1, 27.2)]
    runner = Processes(levels, sd=2.0)
    m = run_processes(spec(replace(W, batch_size=16), processes=3, max_processes=6, target_rel_ci=0.02),
                      runner)
    assert len(runner.specs) == 6  # never tight enough: up to max_processes
    assert m.status == "unstable" and "CI across 6 processes" in m.error
    assert m.stats.timing.rel_ci > 5 * m.stats.processes.rel_ci_within  # the single-process claim was too narrow
    assert m.stats.processes.between_share > 0.9
    lo, hi = m.stats.throughput.samples_per_s_ci_low, m.stats.throughput.samples_per_s_ci_high
    assert lo < 24.2 and hi > 26.0  # the interval spans most of the processes' medians


def test_the_plan_can_refuse_more_processes():
    runner = Processes([10.0, 11.0, 12.0, 10.5, 11.5])
    m = run_processes(spec(processes=3, max_processes=5), runner, more=lambda k: False)
    assert len(runner.specs) == 3 and m.status == "unstable"


def test_a_failed_process_is_the_point():
    m = run_processes(spec(processes=3), Processes([10.0] * 3, fail_at=1))
    assert m.status == "oom" and "process 2 of the point" in m.error


def test_one_process_keeps_its_own_interval():
    runner = Processes([10.0])
    m = run_processes(spec(processes=1, max_processes=1), runner)
    assert m.status == "ok" and m.stats.processes.processes == 1 and m.stats.timing.rel_ci == 0.004


def test_combine_flags_processes_below_min_iters():
    ms = [Processes([10.0], n=3)(PointSpec(W, SHORT, 1)) for _ in range(3)]
    m = combine(ms, 0.5, min_iters=10)
    assert m.status == "unstable" and "fewer than 10 iterations" in m.error


@pytest.mark.parametrize("kw, needle", [
    ({"processes": 0}, "bad measurement processes 0"),
    ({"processes": 4, "max_processes": 3}, "bad measurement max_processes 3"),
])
def test_bad_process_counts(kw, needle):
    with pytest.raises(UserError, match=needle):
        MeasurePolicy(**kw)


def test_budget_too_small_for_the_processes_says_the_minimum():
    with pytest.raises(UserError, match=r"too small for 3 processes per point: .* minimum is 0.6 s"):
        MeasurePolicy(budget_s=0.3, processes=3).check_process_budget()


def test_three_real_workers_on_a_tiny_net():
    policy = replace(SHORT, processes=3, max_processes=3, budget_s=0.9, target_rel_ci=0.5)
    m = run_processes(PointSpec(W, policy, 120.0), run_point)
    s = m.stats
    assert m.status in ("ok", "unstable"), m.error  # a microsecond step on a shared machine: noisy
    assert s.processes.processes == 3 and len(set(s.processes.process_medians_ms)) == 3
    assert sum(s.processes.process_iterations) == s.timing.iterations == len(m.samples_ms)
    assert s.processes.within_sd_ms > 0 and s.processes.between_sd_ms >= 0
