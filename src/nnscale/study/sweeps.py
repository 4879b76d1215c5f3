"""The study's sweeps, planned by need (`nnscale.study.plan`): build the plan, run it point by point.

Fixed batch lists are planned point by point (each its own policy, sized to its estimated step, and
each point may be dropped to fit); an "auto" batch search cannot be planned ahead and keeps the
even share of the budget (`legacy_policy`), as does a study file's `point_budget`.
"""

from __future__ import annotations

import time
from dataclasses import replace

from nnscale.distributed.config import DEFAULT_LAUNCHES
from nnscale.environment import capture_environment
from nnscale.measure.forkserver import IMAGES, POOL, forkable
from nnscale.measure.frameworks import framework_spec
from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.recorder import flop_counter
from nnscale.measure.sweep import SweepConfig, run_sweep
from nnscale.records import Workload
from nnscale.study.config import StudyConfig
from nnscale.study.plan import Pacer, Plan, make_plan, make_point, point_policy, spawn_start_s
from nnscale.zoo import model_info

# Seconds that are not sweeps: a torchrun launch per world size, the scaling and all-reduce points,
# the peaks, the report. Measured on the 2-core development machine.
LAUNCH_S = 15.0
FIXED_S = 45.0
SCALE_POINT_S = 6.0
REUSED_S = 1.0  # a worker cannot start in less: a point that took less was reused, not measured


def scaling_policy(study: StudyConfig) -> MeasurePolicy:
    """The data-parallel step's policy: its budget is shared by the DEFAULT_LAUNCHES interleaved
    launches of each world size (distributed/scaling.py), each one process level."""
    return MeasurePolicy(target_rel_ci=study.target_rel_ci, budget_s=4.0, warmup_max_s=2.0,
                         processes=1, max_processes=1)


def sweep_time_s(study: StudyConfig) -> float:
    """What the study's budget leaves for sweeps."""
    n = len(study.world_sizes)
    launches = DEFAULT_LAUNCHES * n + 1  # every world size in interleaved rounds, then the all-reduce
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
    """Measure the planned points (and any "auto" sweeps) into the run; the plan as it ended."""
    with POOL.session():  # one set of pre-imported interpreters for all the sweeps (forkserver.py)
        return _run_sweeps(study, store, run_name, device, sweeps, plan, legacy, progress)


def _run_sweeps(study, store, run_name, device, sweeps, plan, legacy, progress) -> Plan | None:
    pacer = Pacer(plan, time.monotonic, progress.note) if plan is not None else None
    for framework, net, precision, mode, batches in sweeps:
        base = SweepConfig(model=net, modes=(mode,), device=device, precision=precision,
                           batches=None if batches == "auto" else tuple(batches), policy=legacy,
                           framework=framework, compile=framework_spec(framework).always_compiled)
        if batches == "auto" or pacer is None:
            run_sweep(base, store, progress, run=run_name, resume=True, check_machine=False)
            continue
        for p in [q for q in list(plan.points) if q.sweep == (framework, net, precision, mode)]:
            if not pacer.begin(p):
                continue
            policy = point_policy(p.step_s, study.target_rel_ci, study.processes, study.max_processes)
            t0, images0 = time.monotonic(), POOL.image_start_s
            run_sweep(replace(base, batches=(p.batch,), policy=policy), store, progress, run=run_name,
                      resume=True, check_machine=False, more_processes=pacer.more_processes)
            # Starting an image is set aside in the plan, not part of the point's estimate.
            wall = time.monotonic() - t0 - (POOL.image_start_s - images0)
            # A point reused from a resumed run returns at once: no evidence about the estimates.
            pacer.end(p, wall if wall > REUSED_S else None)
    return plan
