"""`run_sweep`: measure a model over batch sizes (and modes), in isolated worker processes.

Fixed batch sizes (inference before training, in order) are measured in interleaved rounds, one
process of every point per round (measure/rounds.py), so each point's interval spans the sweep.
`batches=None` searches ("auto"): double from 1 until a point does not fit in memory, or its
median step takes longer than `auto_max_step_s` (by default budget / min_iters, the slowest step that can still reach min_iters
within the budget), or the batch would pass `auto_max_batch`; after an out-of-memory point, bisect
between the largest batch that fitted and the smallest that did not, down to the exact largest batch
that fits. Every point, OOM included, is stored the moment it is measured. The knee (the smallest
batch reaching 95 % of the best throughput, `nnscale.stats.knee`) is reported per mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from nnscale.errors import UserError
from nnscale.measure.config import MeasureConfig
from nnscale.measure.forkserver import POOL
from nnscale.measure.frameworks import check_framework, check_model
from nnscale.measure.lm import check_lm_config
from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.progress import NullProgress
from nnscale.measure.recorder import start_recording
from nnscale.measure.rounds import measure_in_rounds
from nnscale.measure.runner import PointSpec, default_timeout_s, run_point
from nnscale.measure.validate import check_device, check_precision, check_threads
from nnscale.records import MEASURED_STATUSES, PRECISIONS, Measurement, Workload
from nnscale.stats import knee
from nnscale.zoo import model_info



@dataclass(frozen=True, slots=True)
class SweepConfig(MeasureConfig):
    """What to sweep (the shared fields: measure/config.py). `batches=None` searches the batch
    sizes (module docstring)."""

    batches: tuple[int, ...] | None = (1, 2, 4, 8, 16, 32)
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False  # per framework: torch.compile, TF XLA, always on for JAX (frameworks.py)
    auto_max_batch: int = 1 << 16
    auto_max_step_s: float | None = None
    activation_checkpointing: bool = False  # language models' training points (measure/lm.py)

    TUPLE_FIELDS: ClassVar[tuple[str, ...]] = (*MeasureConfig.TUPLE_FIELDS, "batches")

    def __post_init__(self) -> None:
        MeasureConfig.__post_init__(self)  # (no zero-argument super() in a slotted dataclass)
        if self.batches is not None and (not self.batches or any(
                not isinstance(b, int) or b <= 0 for b in self.batches)):
            raise UserError(f"bad batch sizes {self.batches!r}: expected positive integers")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.auto_max_step_s is not None and not self.auto_max_step_s > 0:
            raise UserError(f"bad auto_max_step_s {self.auto_max_step_s!r}: expected a positive number")
        if self.auto_max_batch < 1:
            raise UserError(f"bad auto_max_batch {self.auto_max_batch!r}: expected a positive integer")


@dataclass(frozen=True, slots=True)
class SweepResult:
    run: str
    run_id: int
    measurements: tuple[Measurement, ...]
    knees: dict[str, int | None]  # per mode
    notes: tuple[str, ...] = ()


def resolve(config: SweepConfig) -> tuple[SweepConfig, tuple[str, ...]]:
    """Check the config against this machine; (config with defaults filled in, warnings)."""
    compiled = check_framework(config.framework, config.modes, config.precision, config.channels_last,
                               config.compile)
    device = check_device(config.device)
    note = check_precision(device, config.precision)
    default_shape = tuple(model_info(config.model).input_shape)
    check_model(config.framework, config.model, config.input_shape, default_shape)
    check_lm_config(config.model, config.modes, config.input_shape, config.activation_checkpointing,
                    config.framework, config.channels_last, config.compile)
    config.policy.check_process_budget()
    shape = tuple(config.input_shape or default_shape)
    if config.channels_last and len(shape) != 3:
        raise UserError(f"--channels-last needs image input (C, H, W); {config.model} takes {shape}")
    resolved = replace(config, device=device, threads=check_threads(config.threads), input_shape=shape,
                       compile=compiled)
    return resolved, (note,) if note else ()


def workload(config: SweepConfig, mode: str, batch: int) -> Workload:
    return Workload(model=config.model, mode=mode, batch_size=batch, input_shape=config.input_shape,
                    device=config.device, precision=config.precision,
                    channels_last=config.channels_last, compile=config.compile, threads=config.threads,
                    framework=config.framework,
                    activation_checkpointing=config.activation_checkpointing and mode == "training")


def spec(config: SweepConfig, w: Workload, policy: MeasurePolicy | None = None) -> PointSpec:
    policy = policy or config.policy
    compile_s = config.compile_timeout_s if w.compile else 0.0
    one = replace(policy, budget_s=policy.process_budget_s)  # a worker's timeout
    timeout = config.timeout_s or default_timeout_s(one, compile_s)
    return PointSpec(w, policy, timeout, config.memory_cap_bytes)


def search_batches(config: SweepConfig, mode: str, point: Callable[[PointSpec], Measurement]) -> None:
    """Double, then bisect after an OOM, to the largest batch that fits (module docstring)."""
    max_step_ms = 1000.0 * (config.auto_max_step_s or config.policy.process_budget_s / config.policy.min_iters)
    fits, batch, failed = None, 1, None
    while batch <= config.auto_max_batch:
        m = point(spec(config, workload(config, mode, batch)))
        if m.status not in MEASURED_STATUSES:
            failed = m
            break
        fits = batch
        if (m.stats.timing.median_ms or 0.0) > max_step_ms:
            return  # the time limit: larger batches cannot be measured well within the budget
        batch *= 2
    if fits is None or failed is None or failed.status != "oom":
        return
    low, high = fits, failed.workload.batch_size
    while high - low > 1:
        mid = (low + high) // 2
        if point(spec(config, workload(config, mode, mid))).status in MEASURED_STATUSES:
            low = mid
        else:
            high = mid


def run_sweep(
    config: SweepConfig,
    store,
    progress=None,
    *,
    run: str | None = None,
    resume: bool = False,
    command_line: str = "",
    runner: Callable[[PointSpec], Measurement] = run_point,
    check_machine: bool = True,
) -> SweepResult:
    """Measure `config`'s points into run `run` of `store` (a new run unless `resume`).

    `check_machine`: look for interference first (a study does it once for all its sweeps)."""
    progress = progress or NullProgress()
    config, notes = resolve(config)
    recorder, run_name, warning = start_recording(
        store, "sweep", config, workload(config, config.modes[0], 1), run=run, resume=resume,
        command_line=command_line, progress=progress, runner=runner, check_machine=check_machine)
    total = None if config.batches is None else len(config.batches) * len(config.modes)
    on = f"on {config.device}" if config.framework == "torch" else f"with {config.framework} on {config.device}"
    progress.begin(f"sweep {config.model} {on} ({config.precision}) -> run {run_name!r}",
                   total, config.point_s)
    for note in notes:
        progress.note(f"note: {note}")
    if warning:
        progress.note(warning)
    try:
        with POOL.session():  # workers forked from pre-imported interpreters (measure/forkserver.py)
            if config.batches is None:
                for mode in config.modes:
                    search_batches(config, mode, recorder.point)
                measured = list(recorder.measured)
            else:  # every point's processes in interleaved rounds (measure/rounds.py)
                measured = measure_in_rounds([spec(config, workload(config, mode, batch))
                                              for mode in config.modes for batch in config.batches],
                                             recorder)
    finally:
        progress.end()
    knees = {}
    for mode in config.modes:
        ok = [m for m in measured if m.workload.mode == mode and m.status in MEASURED_STATUSES]
        knees[mode] = knee([m.workload.batch_size for m in ok],
                           [m.stats.throughput.samples_per_s for m in ok])
    return SweepResult(run_name, recorder.run_id, tuple(measured), knees, notes)

