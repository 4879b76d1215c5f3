"""`run_sweep`: measure a model over batch sizes (and modes), one isolated worker per point.

Fixed batch sizes are measured in order, inference before training. `batches=None` searches
("auto"): double from 1 until a point does not fit in memory, or its median step takes longer than
`auto_max_step_s` (by default budget / min_iters, the slowest step that can still reach min_iters
within the budget), or the batch would pass `auto_max_batch`; after an out-of-memory point, bisect
between the largest batch that fitted and the smallest that did not, down to the exact largest batch
that fits. Every point, OOM included, is stored the moment it is measured. The knee (the smallest
batch reaching 95 % of the best throughput, `nnscale.stats.knee`) is reported per mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

from nnscale.errors import UserError
from nnscale.measure.frameworks import check_framework, check_model
from nnscale.measure.lm import check_lm_config
from nnscale.measure.methodology import INTERFERENCE_MAX, MeasurePolicy, check_interference_max
from nnscale.measure.progress import NullProgress
from nnscale.measure.recorder import Recorder, flop_counter, open_run, peak_lookup
from nnscale.measure.runner import STARTUP_S, PointSpec, default_timeout_s, run_point
from nnscale.measure.validate import check_device, check_precision, check_seconds, check_threads
from nnscale.environment import check_interference
from nnscale.records import ALL_MODES, MEASURED_STATUSES, PRECISIONS, Measurement, Workload
from nnscale.stats import knee
from nnscale.zoo import model_info



@dataclass(frozen=True, slots=True)
class SweepConfig:
    """What to sweep. `batches=None` searches the batch sizes (module docstring)."""

    model: str
    modes: tuple[str, ...] = ("inference",)
    batches: tuple[int, ...] | None = (1, 2, 4, 8, 16, 32)
    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False  # per framework: torch.compile, TF XLA, always on for JAX (frameworks.py)
    threads: int = 0  # 0: all usable cores, resolved when the sweep starts
    framework: str = "torch"
    input_shape: tuple[int, ...] | None = None  # (C, H, W); None: the model's own
    policy: MeasurePolicy = field(default_factory=MeasurePolicy)
    timeout_s: float | None = None  # per point; None: start-up + compile + warm-up + 2 × budget
    compile_timeout_s: float = 600.0
    memory_cap_bytes: int | None = None  # per worker; None: on CPU what the machine has free
    auto_max_batch: int = 1 << 16
    auto_max_step_s: float | None = None
    # Warn when the load per core, others' CPU share or the steal share is above this (environment.py)
    interference_max: float = INTERFERENCE_MAX
    activation_checkpointing: bool = False  # language models' training points (measure/lm.py)

    def __post_init__(self) -> None:
        if not self.modes or any(m not in ALL_MODES for m in self.modes):
            raise UserError(f"bad modes {self.modes!r}: expected inference, training and/or decode "
                            "(language models)")
        if self.batches is not None and (not self.batches or any(
                not isinstance(b, int) or b <= 0 for b in self.batches)):
            raise UserError(f"bad batch sizes {self.batches!r}: expected positive integers")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        for name, option in (("timeout_s", "--timeout"), ("compile_timeout_s", "--compile-timeout")):
            if getattr(self, name) is not None:  # finite and bounded: inf overflows communicate()
                check_seconds(getattr(self, name), option)
        for name in ("auto_max_step_s", "memory_cap_bytes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserError(f"bad {name} {value!r}: expected a positive number")
        check_interference_max(self.interference_max)
        if self.auto_max_batch < 1:
            raise UserError(f"bad auto_max_batch {self.auto_max_batch!r}: expected a positive integer")

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["policy"] = self.policy.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SweepConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["policy"] = MeasurePolicy.from_dict(kw.get("policy", {}))
        for key in ("modes", "batches", "input_shape"):
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        return cls(**kw)


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
    more_processes: Callable[[int], bool] = lambda k: True,
) -> SweepResult:
    """Measure `config`'s points into run `run` of `store` (a new run unless `resume`).

    `check_machine`: look for interference first (a study does it once for all its sweeps);
    `more_processes(k)`: may a noisy point get a (k+1)-th process (the study's plan decides)."""
    progress = progress or NullProgress()
    config, notes = resolve(config)
    flops = flop_counter()
    flops(workload(config, config.modes[0], 1))  # checks the input fits the model: before any run exists
    found = check_interference(config.interference_max) if check_machine else None
    warning = found["warning"] if found else None
    run_id, run_name, done = open_run(store, "sweep", config.to_dict(), run, resume, command_line,
                                      extra_environment={"interference": found} if found else None)
    recorder = Recorder(store, run_id, done, progress, runner, flops, peak_lookup(), more_processes)
    total = None if config.batches is None else len(config.batches) * len(config.modes)
    p = config.policy
    per_point = p.processes * (STARTUP_S / 4 + p.warmup_max_s) + p.budget_s
    on = f"on {config.device}" if config.framework == "torch" else f"with {config.framework} on {config.device}"
    progress.begin(f"sweep {config.model} {on} ({config.precision}) -> run {run_name!r}",
                   total, per_point)
    for note in notes:
        progress.note(f"note: {note}")
    if warning:
        progress.note(warning)
    knees = {}
    try:
        for mode in config.modes:
            start = len(recorder.measured)
            if config.batches is None:
                search_batches(config, mode, recorder.point)
            else:
                for batch in config.batches:
                    recorder.point(spec(config, workload(config, mode, batch)))
            ok = [m for m in recorder.measured[start:] if m.status in MEASURED_STATUSES]
            knees[mode] = knee([m.workload.batch_size for m in ok], [m.stats.throughput.samples_per_s for m in ok])
    finally:
        progress.end()
    return SweepResult(run_name, run_id, tuple(recorder.measured), knees, notes)

