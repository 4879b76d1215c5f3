"""`run_tune`: try the precision × memory-format × compile combinations a device supports and report
the fastest configuration for each batch size.

Candidates: every precision the device runs natively (`validate.default_precisions`; a CPU without
native fp16 is not offered fp16, which it would only emulate), channels-last off and on, and
`torch.compile` off and on when a compiler is there (inductor needs a C++ compiler on CPU and
Triton on CUDA). Each candidate is an ordinary point in its own worker: a compilation that fails or
runs past `compile_timeout_s` is stored as an error or timeout point and the tuning goes on. The
baseline (fp32, NCHW, eager) is measured first, so every choice comes with its speed-up over it.

With another framework (`TuneConfig.framework`) the candidates are what it can run
(docs/methodology.md, "Frameworks"): tensorflow tries XLA off and on; jax only runs jitted, so its
baseline is fp32 jitted; onnxruntime has one configuration per precision; Keras runs NHWC only.
"""

from __future__ import annotations

import importlib.util
import itertools
import shutil
from dataclasses import dataclass, field, replace
from typing import ClassVar

from nnscale.errors import UserError
from nnscale.measure.config import MeasureConfig
from nnscale.measure.forkserver import POOL
from nnscale.measure.frameworks import framework_spec
from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.progress import NullProgress
from nnscale.measure.recorder import start_recording
from nnscale.measure.runner import run_point
from nnscale.measure.sweep import SweepConfig, resolve, spec, workload
from nnscale.measure.validate import check_precision, default_precisions
from nnscale.records import MEASURED_STATUSES, Measurement

TUNE_POLICY = MeasurePolicy(budget_s=10.0, warmup_max_s=5.0)  # choosing needs less than reporting


@dataclass(frozen=True, slots=True)
class TuneConfig(MeasureConfig):
    """What to tune (the shared fields: measure/config.py): the candidates' settings to try."""

    batches: tuple[int, ...] = (1, 16)
    precisions: tuple[str, ...] | None = None  # None: what the device runs natively
    channels_last: tuple[bool, ...] = (False, True)
    compile: tuple[bool, ...] | None = None  # None: (False, True) when a compiler is there
    policy: MeasurePolicy = TUNE_POLICY
    compile_timeout_s: float = 300.0

    TUPLE_FIELDS: ClassVar[tuple[str, ...]] = (*MeasureConfig.TUPLE_FIELDS, "batches", "precisions",
                                               "channels_last", "compile")

    def __post_init__(self) -> None:
        MeasureConfig.__post_init__(self)  # (no zero-argument super() in a slotted dataclass)
        if not self.batches:
            raise UserError("tune needs at least one batch size")
        if self.precisions is not None and not self.precisions:
            raise UserError("tune needs at least one precision")


@dataclass(frozen=True, slots=True)
class TuneChoice:
    mode: str
    batch_size: int
    best: Measurement | None  # None when no candidate ran
    baseline: Measurement | None  # fp32, NCHW, eager (None when not tried)
    tried: tuple[Measurement, ...] = field(default=(), repr=False)

    @property
    def speedup(self) -> float | None:
        if self.best is None or self.baseline is None or self.baseline.status not in MEASURED_STATUSES:
            return None
        return self.best.stats.throughput.samples_per_s / self.baseline.stats.throughput.samples_per_s


@dataclass(frozen=True, slots=True)
class TuneResult:
    run: str
    run_id: int
    choices: tuple[TuneChoice, ...]
    notes: tuple[str, ...] = ()


def _is_baseline(m: Measurement) -> bool:
    """fp32, default layout, uncompiled — compiled for JAX, which only runs compiled."""
    w = m.workload
    compiled = framework_spec(w.framework).always_compiled
    return w.precision == "fp32" and not w.channels_last and w.compile == compiled


def compiler_missing(device: str) -> str | None:
    """Why torch.compile cannot work here, or None when it can."""
    if device == "cpu":
        if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
            return "no C++ compiler (g++, c++ or clang++) on PATH, which torch.compile needs on CPU"
        return None
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed, which torch.compile needs on CUDA"
    return None


def _framework_options(config: TuneConfig, device: str, notes: list[str]):
    """(compile settings, layouts) to try with `config.framework` (docs/methodology.md, Frameworks):
    torch: torch.compile off/on when a compiler is there, NCHW and channels-last; tensorflow: XLA
    off/on; jax: jax.jit only; onnxruntime: its one session. Keras runs NHWC only."""
    spec = framework_spec(config.framework)
    compiles = config.compile
    if spec.always_compiled or spec.compile_refused:
        compiles = (spec.always_compiled,)
    elif compiles is None:
        missing = compiler_missing(device) if config.framework == "torch" else None
        compiles = (False,) if missing else (False, True)
        if missing:
            notes.append(f"compile not tried: {missing}")
    layouts = (False,) if spec.channels_last_refused else config.channels_last
    return tuple(compiles), tuple(layouts)


def candidates(config: TuneConfig) -> tuple[list[SweepConfig], tuple[str, ...]]:
    """The sweep configurations to try, baseline first; and notes about what was left out."""
    spec_ = framework_spec(config.framework)
    base, notes = resolve(SweepConfig(**config.shared(), compile=spec_.always_compiled))
    notes = list(notes)
    precisions = config.precisions or tuple(p for p in default_precisions(base.device)
                                            if not any(spec_.allows(m, p) for m in config.modes))
    for p in precisions:
        why = next(filter(None, (spec_.allows(m, p, base.device) for m in config.modes)), None)
        if why:
            raise UserError(why)
        note = check_precision(base.device, p)  # UserError for one the device cannot run
        if note:
            notes.append(note)
    compiles, layouts = _framework_options(config, base.device, notes)
    if len(base.input_shape) != 3 and True in layouts:
        notes.append("channels-last not tried: the input is not an image")
        layouts = (False,)
    plain = ("fp32", False, spec_.always_compiled)
    combos = sorted(itertools.product(precisions, layouts, compiles),
                    key=lambda c: (c != plain, c[2], c[1]))
    configs = [replace(base, precision=p, channels_last=cl, compile=c) for p, cl, c in combos]
    return configs, tuple(notes)


def run_tune(config: TuneConfig, store, progress=None, **recording) -> TuneResult:
    """Measure every candidate at every batch size into one run; the fastest per batch.

    `recording`: run, resume, command_line, runner, as `run_sweep` takes them (declared once, by
    `start_recording`)."""
    progress = progress or NullProgress()
    configs, notes = candidates(config)
    recorder, run_name, warning = start_recording(
        store, "tune", config, workload(configs[0], config.modes[0], 1), progress=progress,
        **{"runner": run_point, **recording})
    total = len(configs) * len(config.batches) * len(config.modes)
    progress.begin(f"tune {config.model} on {configs[0].device}: {len(configs)} configurations "
                   f"x {len(config.batches)} batch sizes -> run {run_name!r}", total, config.point_s)
    for note in notes:
        progress.note(f"note: {note}")
    if warning:
        progress.note(warning)
    choices = []
    try:
        with POOL.session():  # workers forked from pre-imported interpreters (measure/forkserver.py)
            for mode, batch in itertools.product(config.modes, config.batches):
                tried = tuple(recorder.point(spec(c, workload(c, mode, batch))) for c in configs)
                ran = [m for m in tried if m.status in MEASURED_STATUSES and m.stats.throughput.samples_per_s]
                best = max(ran, key=lambda m: m.stats.throughput.samples_per_s) if ran else None
                base = next((m for m in tried if _is_baseline(m)), None)
                choices.append(TuneChoice(mode, batch, best, base, tried))
    finally:
        progress.end()
    return TuneResult(run_name, recorder.run_id, tuple(choices), notes)
