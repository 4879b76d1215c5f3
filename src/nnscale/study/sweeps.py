"""The study's sweeps, planned by need (`nnscale.study.plan`): build the plan, run it in rounds.

Fixed batch lists are planned point by point (each its own policy, sized to its estimated step, and
each point may be dropped to fit); an "auto" batch search cannot be planned ahead and keeps the
even share of the budget (`legacy_policy`), as does a study file's `point_budget`. All fixed-batch
points, of every net, mode and framework, are measured together in interleaved rounds
(measure/rounds.py): one process of each per round, so each point's interval spans the sweeps'
whole time, not the few seconds its processes would take back to back.
"""

from __future__ import annotations

import time
from dataclasses import replace

from nnscale.environment import capture_environment
from nnscale.measure.forkserver import IMAGES, POOL, forkable
from nnscale.measure.frameworks import framework_spec
from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.recorder import flop_counter, start_recording
from nnscale.measure.rounds import measure_in_rounds
from nnscale.measure.runner import PointSpec, run_point
from nnscale.measure.sweep import SweepConfig, resolve, run_sweep, spec, workload
from nnscale.records import Workload
from nnscale.study.config import StudyConfig
from nnscale.study.plan import (Pacer, Plan, PlannedPoint, make_plan, make_point, point_policy,
                                spawn_start_s)
from nnscale.zoo import model_info

# Seconds that are not sweeps: the torchrun launches (every world size's scale_launches, and as
# many of the all-reduce), the scaling and all-reduce points, the peaks, the report. Measured on the
# 2-core development machines (docs/benchmarks.md): 7 launches with their measurements took 89 s
# in session 7's study (AVX2 VM), and 9 took 73-74 s in two studies of session 8 (EPYC VM, after
# torchrun's exit was cut by ~0.9 s a launch: lifeline.py): 8 s a launch plus SCALE_POINT_S per
# point plans 96 s for those 9, where 15 s planned 159 s and left the sweeps a minute short.
LAUNCH_S = 8.0
FIXED_S = 45.0
SCALE_POINT_S = 6.0


def scaling_policy(study: StudyConfig) -> MeasurePolicy:
    """The data-parallel step's policy: its budget is shared by the `scale_launches` interleaved
    launches of each world size (distributed/scaling.py), each one process level."""
    return MeasurePolicy(target_rel_ci=study.target_rel_ci, budget_s=4.0, warmup_max_s=2.0,
                         processes=1, max_processes=1)


def scaling_points(study: StudyConfig) -> int:
    """The scaling stage's points: every world size, and a loaded reference for each one above 1
    (runner._scaling: the compute of that many co-located workers, distributed/scaling.py)."""
    return len(study.world_sizes) + sum(1 for w in study.world_sizes if w > 1)


def sweep_time_s(study: StudyConfig) -> float:
    """What the study's budget leaves for sweeps."""
    n = scaling_points(study)
    # Every scaling point in interleaved rounds, then as many launches of the all-reduce.
    launches = study.scale_launches * (n + 1)
    return study.budget_s - FIXED_S - LAUNCH_S * launches - SCALE_POINT_S * (n + 2)


def precisions_for(study: StudyConfig, device: str) -> tuple[tuple[str, ...], str | None]:
    """The study's precisions; on a CPU with `cpu_fastest_precision`, the fastest it runs natively."""
    if device != "cpu" or not study.cpu_fastest_precision:
        return study.precisions, None
    cpu = capture_environment(include_torch=False)["cpu"]
    if cpu.get("bf16_native"):
        return ("bf16",), "the CPU has native bf16 (AMX or AVX-512 BF16): the sweeps run bf16"
    flags = " ".join(cpu.get("vector_flags") or []) or "none of note"
    return ("fp32",), (f"the CPU has no AMX or AVX-512 BF16 (vector flags: {flags}), so bf16 is no "
                       "faster than fp32: the sweeps run fp32")


def make_study_plan(study: StudyConfig, sweeps, peaks: dict[str, float], device: str = "cpu") -> Plan:
    """Every fixed-batch point of `sweeps` ((framework, net, precision, mode, batches) tuples).

    Workers that can be forked from pre-imported interpreters (measure/forkserver.py) cost a fork,
    not a start-up, each; the images themselves, IMAGES start-ups, are set aside once."""
    flops = flop_counter()
    points = []
    forks = False
    for framework, net, precision, mode, batches in sweeps:
        if batches == "auto":
            continue
        shape = tuple(model_info(net).input_shape)
        forked = forkable(framework, device)
        forks = forks or forked
        for batch in batches:
            f = flops(Workload(net, mode, batch, shape, precision=precision))
            points.append(make_point(framework, net, precision, mode, batch, f, peaks.get(precision),
                                     study.processes, forked))
    images_s = IMAGES * spawn_start_s("torch") if forks else 0.0
    return make_plan(points, sweep_time_s(study) - images_s, study.processes, study.budget_s)


def run_sweeps(study: StudyConfig, store, run_name: str, device: str, sweeps, plan: Plan | None,
               legacy: MeasurePolicy, progress) -> Plan | None:
    """Measure the study's fixed-batch points in interleaved rounds (measure/rounds.py), then any
    "auto" batch search, into the run; the plan as it ended."""
    with POOL.session():  # one set of pre-imported interpreters for all the sweeps (forkserver.py)
        fixed = [s for s in sweeps if s[-1] != "auto"]
        if fixed:
            _run_rounds(study, store, run_name, device, fixed, plan, legacy, progress)
        for framework, net, precision, mode, _auto in [s for s in sweeps if s[-1] == "auto"]:
            run_sweep(_sweep_config(framework, net, precision, mode, device, None, legacy), store,
                      progress, run=run_name, resume=True, check_machine=False)
    return plan


def _sweep_config(framework, net, precision, mode, device, batches, policy) -> SweepConfig:
    return SweepConfig(model=net, modes=(mode,), device=device, precision=precision, batches=batches,
                       policy=policy, framework=framework,
                       compile=framework_spec(framework).always_compiled)


def _run_rounds(study, store, run_name, device, sweeps, plan, legacy, progress) -> None:
    """Every point's spec (the planned ones with their own policies, else the even share), one
    recorder for the run, and the rounds, paced by the plan when there is one."""
    planned: list[PlannedPoint] = []
    specs: list[PointSpec] = []
    notes: list[str] = []
    first = None
    for framework, net, precision, mode, batches in sweeps:
        base = _sweep_config(framework, net, precision, mode, device, tuple(batches), legacy)
        if plan is None:
            points = [(b, legacy, None) for b in batches]
        else:
            points = [(p.batch, point_policy(p.step_s, study.target_rel_ci, study.processes,
                                             study.max_processes), p)
                      for p in plan.points if p.sweep == (framework, net, precision, mode)]
        for batch, policy, p in points:
            config, found = resolve(replace(base, batches=(batch,), policy=policy))
            notes += [n for n in found if n not in notes]
            first = first or config
            specs.append(spec(config, workload(config, mode, batch)))
            if p is not None:
                planned.append(p)
    if not specs:
        return
    recorder, _, _ = start_recording(store, "sweep", first, specs[0].workload, progress=progress,
                                     run=run_name, resume=True, runner=run_point, check_machine=False)
    k = study.processes
    progress.begin(f"sweeps: {len(specs)} points, {k} processes each in interleaved rounds "
                   f"-> run {run_name!r}", len(specs), first.point_s)
    for note in notes:
        progress.note(f"note: {note}")
    pace = None if plan is None else Pacer(plan, planned, time.monotonic, progress.note,
                                           overhead_s=lambda: POOL.image_start_s)
    try:
        measure_in_rounds(specs, recorder, pace)
    finally:
        progress.end()
