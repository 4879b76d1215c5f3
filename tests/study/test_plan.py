"""Budget by need: the plan's cost model, what it drops to fit (batch sizes before networks), the
minimum budget, and the pacer that re-fits and hands out extra processes while the study runs."""

from dataclasses import replace

import pytest

from nnscale.errors import UserError
from nnscale.study.config import QUICK
from nnscale.study.plan import Pacer, make_plan, make_point, point_policy, process_cost_s
from nnscale.study.runner import check_frameworks, planned_sweeps
from nnscale.study.sweeps import make_study_plan, sweep_time_s

PEAK = 117.8e9  # this 2-core VM's measured fp32 GEMM peak (nnscale device)
GFLOP = 10**9


def points(k=3):
    # A big net's sweep (inference 1, 4, 16) and a small one's (one batch).
    big = [make_point("torch", "big", "fp32", "inference", b, 8 * GFLOP, PEAK, k) for b in (1, 4, 16)]
    return big + [make_point("torch", "small", "fp32", "inference", 64, 10**7, PEAK, k)]


def test_cost_grows_with_the_step_and_the_processes():
    p1, p3 = make_point("torch", "n", "fp32", "training", 8, 24 * GFLOP, PEAK, 1), \
        make_point("torch", "n", "fp32", "training", 8, 24 * GFLOP, PEAK, 3)
    assert p3.cost_s == pytest.approx(3 * p1.cost_s)
    assert 1.5 < p1.step_s < 3.0  # ResNet-50 training batch 8: 1.9 s a step measured here
    policy = point_policy(p1.step_s, 0.05, 3, 6)
    assert policy.processes == 3 and policy.process_budget_s >= 5 * p1.step_s


def test_fitting_drops_the_costliest_largest_batch_and_keeps_every_sweep():
    pts = points()
    total = sum(p.cost_s for p in pts)
    plan = make_plan(pts, total - 1, 3, 600)
    assert [(p.net, p.batch) for p, _ in plan.dropped] == [("big", 16)]
    assert {p.net for p in plan.points} == {"big", "small"}
    assert plan.cost_s <= total - 1
    assert "dropped big inference batch 16" in "\n".join(plan.lines())
    assert plan.to_dict()["dropped"][0].startswith("big inference batch 16")


def test_a_budget_too_small_for_one_batch_per_sweep_says_the_minimum():
    pts = points()
    with pytest.raises(UserError, match=r"too small for 3 processes per point: .* minimum is about \d+ s"):
        make_plan(pts, 10.0, 3, 100)


def test_the_pacer_drops_more_when_processes_take_longer_than_planned():
    pts = points()
    plan = make_plan(pts, sum(p.cost_s for p in pts) + 1, 3, 600)
    now = [0.0]
    notes = []
    pacer = Pacer(plan, list(plan.points), lambda: now[0], notes.append)
    assert pacer.may_start(0)
    unit = plan.points[0].cost_s / 3
    now[0] += 3 * unit  # round 1's first process: three times slower than estimated
    pacer.process_done(0, 3 * unit)
    assert pacer.scale() == pytest.approx(3.0)
    # The points not started yet are re-fitted into what point 0's two owed processes leave.
    assert pacer.owed_s() == pytest.approx(2 * unit)
    big16 = next(i for i, p in enumerate(pacer.points) if (p.net, p.batch) == ("big", 16))
    assert not pacer.may_start(big16)  # deferred: not now, still in the plan
    assert any("deferred big inference batch 16" in n and "+200 %" in n for n in notes)
    assert pacer.points[big16] in plan.points and not plan.dropped
    assert not pacer.may_start(big16) and sum("deferred" in n for n in notes) == 1  # said once
    pacer.drop(big16)  # the rounds give up on it (nothing else could be measured)
    assert any("dropped big inference batch 16" in n for n in notes)
    assert ("big", 16) in [(p.net, p.batch) for p, _ in plan.dropped]
    assert pacer.points[big16] not in plan.points


def test_a_deferred_point_starts_once_the_others_turn_out_faster_than_feared():
    pts = points()
    plan = make_plan(pts, 1.1 * sum(p.cost_s for p in pts), 3, 600)
    now = [0.0]
    notes = []
    pacer = Pacer(plan, list(plan.points), lambda: now[0], notes.append)
    unit = plan.points[0].cost_s / 3
    assert pacer.may_start(0)
    now[0] += 3 * unit
    pacer.process_done(0, 3 * unit)  # a slow first process
    big16 = next(i for i, p in enumerate(pacer.points) if (p.net, p.batch) == ("big", 16))
    assert not pacer.may_start(big16)
    for _ in range(2):  # then point 0's other processes, much faster than estimated
        now[0] += 0.05 * unit
        pacer.process_done(0, 0.05 * unit)
    pacer.point_done(0)
    assert pacer.scale() < 1.2 and pacer.may_start(big16)
    assert any("started big inference batch 16 (fp32), deferred before" in n for n in notes)
    assert not plan.dropped


def test_an_image_start_inside_a_process_is_not_counted_against_the_estimates():
    pts = points()
    plan = make_plan(pts, 10 * sum(p.cost_s for p in pts), 3, 6000)
    images = [0.0]
    pacer = Pacer(plan, list(plan.points), lambda: 0.0, overhead_s=lambda: images[0])
    unit = plan.points[0].cost_s / 3
    pacer.may_start(0)
    images[0] = 18.0  # three images started during the first process
    pacer.process_done(0, unit + 18.0)
    assert pacer.scale() == pytest.approx(1.0)


def test_a_point_resumed_with_stored_processes_is_never_dropped_and_owes_only_the_rest():
    pts = points()
    plan = make_plan(pts, sum(p.cost_s for p in pts) + 1, 3, 600)
    now = [0.0]
    pacer = Pacer(plan, list(plan.points), lambda: now[0])
    big16 = next(i for i, p in enumerate(pacer.points) if (p.net, p.batch) == ("big", 16))
    pacer.resumed(big16, 2)  # the most droppable point: its sweep's largest, costliest batch
    assert pacer.owed_s() == pytest.approx(pacer.unit_s(big16))
    assert pacer.scale() == 1.0  # stored processes are no evidence about this run
    pacer.may_start(0)
    now[0] += 10 * plan.points[0].cost_s
    pacer.process_done(0, 10 * plan.points[0].cost_s)  # far behind: waiting points are dropped
    for i in range(1, len(pacer.points)):
        if i != big16:
            pacer.may_start(i)
    assert pacer.points[big16] in plan.points and not plan.dropped  # (unfixed: big 16 dropped)


def test_extra_processes_only_with_slack():
    pts = points()
    for available, allowed in ((10 * sum(p.cost_s for p in pts), True), (sum(p.cost_s for p in pts), False)):
        now = [0.0]
        plan = make_plan(list(pts), available, 3, 6000)
        pacer = Pacer(plan, list(plan.points), lambda: now[0])
        pacer.may_start(0)
        for _ in range(3):  # point 0's three processes, as estimated
            pacer.process_done(0, plan.points[0].cost_s / 3)
        now[0] = plan.points[0].cost_s
        assert pacer.more(0, 3) is allowed


def test_the_quick_study_plan_fits_and_keeps_the_seeds_three_networks():
    study, _ = check_frameworks(QUICK)
    plan = make_study_plan(study, list(planned_sweeps(study)), {"fp32": PEAK})
    assert plan.cost_s <= sweep_time_s(study)
    kept = {(p.net, p.mode) for p in plan.points}
    for net in ("alexnet", "googlenet", "resnet50"):
        assert {(net, "inference"), (net, "training")} <= kept
    assert {"caffe-conv", "tf-mnist-convnet", "matconvnet-lenet", "pytorch-mnist-net"} <= {p.net for p in plan.points}


def test_the_cpus_fastest_precision_is_chosen_and_said():
    from nnscale.study.sweeps import precisions_for

    precisions, note = precisions_for(QUICK, "cpu")
    native = any(f in open("/proc/cpuinfo").read() for f in ("amx_bf16", "avx512_bf16"))
    assert precisions == (("bf16",) if native else ("fp32",))
    assert ("native bf16" in note) if native else ("no AMX or AVX-512 BF16" in note)
    assert precisions_for(QUICK, "cuda") == (QUICK.precisions, None)


def test_a_step_far_slower_than_estimated_resizes_the_points_budget_timeout_and_cost():
    from nnscale.measure.runner import PointSpec
    from nnscale.records import Measurement, Workload

    pts = points()
    plan = make_plan(pts, 10 * sum(p.cost_s for p in pts), 3, 6000)
    notes = []
    pacer = Pacer(plan, list(plan.points), lambda: 0.0, notes.append)
    i = next(i for i, p in enumerate(pacer.points) if (p.net, p.batch) == ("big", 16))
    q = pacer.points[i]
    policy = point_policy(q.step_s, 0.15, 3, 6)
    s = PointSpec(Workload("big", "inference", 16, (3, 8, 8)), policy, 100.0)
    measured = lambda ms: Measurement(s.workload, "ok", samples_ms=(ms,), stats={"median_ms": ms})  # noqa: E731
    assert pacer.revise(i, s, measured(1.4e3 * q.step_s)) is s  # within REVISE_FACTOR: as planned
    slow_s = 8 * q.step_s
    revised = pacer.revise(i, s, measured(1e3 * slow_s))
    assert revised.policy == replace(policy, budget_s=point_policy(slow_s, 0.15, 3, 6).budget_s,
                                     warmup_max_s=point_policy(slow_s, 0.15, 3, 6).warmup_max_s)
    assert revised.policy.process_budget_s >= 2 * 5 * slow_s  # room for min_iters, twice over
    grown = (revised.policy.warmup_max_s - policy.warmup_max_s
             + (1 + policy.max_budget_stretch) * (revised.policy.process_budget_s - policy.process_budget_s))
    assert revised.timeout_s == pytest.approx(100.0 + grown)
    assert pacer.points[i].step_s == slow_s and pacer.points[i] in plan.points and q not in plan.points
    # Its remaining processes are costed at the measured step (start-up as planned).
    assert pacer.unit_s(i) == pytest.approx(
        q.cost_s / 3 + process_cost_s("torch", slow_s) - process_cost_s("torch", q.step_s))
    assert any("re-sized big inference batch 16" in n for n in notes)


def test_a_tiny_step_slower_than_estimated_is_only_costed_when_its_budgets_sit_at_their_floors():
    from nnscale.measure.runner import PointSpec
    from nnscale.records import Measurement, Workload

    pts = points()
    plan = make_plan(pts, 10 * sum(p.cost_s for p in pts), 3, 6000)
    notes = []
    pacer = Pacer(plan, list(plan.points), lambda: 0.0, notes.append)
    i = next(i for i, p in enumerate(pacer.points) if p.net == "small")
    q = pacer.points[i]
    s = PointSpec(Workload("small", "inference", 64, (3, 8, 8)), point_policy(q.step_s, 0.15, 3, 6), 60.0)
    step_s = 4 * q.step_s  # 4x, but still well under the 1 s-a-process floor's 5 steps twice over
    m = Measurement(s.workload, "ok", samples_ms=(1e3 * step_s,), stats={"median_ms": 1e3 * step_s})
    assert pacer.revise(i, s, m) is s and not notes
    assert pacer.points[i].step_s == step_s and pacer.points[i] in plan.points
