"""A run being measured: open (or resume) it in the store, measure points, commit each at once.

Shared by `sweep` and `tune`. Durability comes from the store: `add_measurement` commits one point
per transaction before it returns, so a run killed at any moment (SIGKILL included) loses at most
the point in flight. Each point is measured in `spec.policy.processes` fresh workers or more
(`nnscale.measure.processes`) and stored once, combined; measured in rounds
(`nnscale.measure.rounds`), each of its processes is stored as it ends too, and a resumed run
continues from them. Resuming reads the run's finished points (ok, unstable, oom) back and reuses
them instead of measuring again; points that ended in error or timeout are measured again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace

from nnscale.environment import check_interference
from nnscale.errors import UserError
from nnscale.measure.lm import flops_per_sample as lm_flops_per_sample
from nnscale.measure.lm import is_lm
from nnscale.measure.point import derive
from nnscale.measure.processes import measure_process, process_spec, run_processes
from nnscale.measure.progress import NullProgress
from nnscale.measure.runner import PointSpec, run_point
from nnscale.records import MEASURED_STATUSES, Measurement, Workload
from nnscale.store import FINISHED_STATUSES, capture_environment


def open_run(store, kind: str, config: dict, run: str | None, resume: bool,
             command_line: str = "", extra_environment: dict | None = None,
             ) -> tuple[int, str, dict[str, Measurement]]:
    """(run id, run name, finished points by workload key). `kind` is "sweep" or "tune"."""
    if resume:
        if not run:
            raise UserError("--resume needs the name of the run to resume")
        if store.latest_run() is not None:  # else: killed before its first commit: start it
            info = store.run(run)  # UserError naming the known runs if there is none
            _check_same(info, kind, config)
            done = {m.workload.key(): m for m in store.measurements(run)
                    if m.status in FINISHED_STATUSES}
            return info.id, info.name, done
    info = store.open_run(run, command_line,
                          lambda: dict(capture_environment(), **(extra_environment or {})),
                          json.dumps({kind: config}, sort_keys=True))
    return info.id, info.name, {}


def start_recording(store, kind: str, config, first: Workload, *, progress, run: str | None = None,
                    resume: bool = False, command_line: str = "",
                    runner: Callable[[PointSpec], Measurement],
                    check_machine: bool = True,
                    ) -> tuple[Recorder, str, str | None]:
    """(recorder, run name, interference warning or None) for a `sweep` or `tune` (`kind`) of
    `config` (a measure.config.MeasureConfig): the input is checked on the `first` point's workload
    before any run exists, the machine is checked for interference (`check_machine`; a study does
    it once for all its sweeps) and the finding kept in a new run's environment, then the run is
    opened (or resumed)."""
    flops = flop_counter()
    flops(first)  # the input fits the model: a one-line error before any run exists
    found = check_interference(config.interference_max) if check_machine else None
    run_id, run_name, done = open_run(store, kind, config.to_dict(), run, resume, command_line,
                                      extra_environment={"interference": found} if found else None)
    recorder = Recorder(store, run_id, done, progress, runner, flops, peak_lookup())
    return recorder, run_name, found["warning"] if found else None


# What a resumed run must share with the one stored: points of another model, device or framework
# would be mixed into it under the same name (batches, budgets and the like may change).
RESUME_SAME = ("model", "device", "framework")


def _check_same(info, kind: str, config: dict) -> None:
    """UserError if the stored run was started by the same command with another model, device or
    framework. A run of another kind (a study's run, resumed by its sweeps) is checked by its own
    command."""
    try:
        stored = json.loads(info.notes).get(kind)
    except (ValueError, AttributeError):
        return
    if not isinstance(stored, dict):
        return
    for key in RESUME_SAME:
        if key in stored and key in config and stored[key] != config[key]:
            raise UserError(f"run {info.name!r} was started with {key} {stored[key]!r}, not "
                            f"{config[key]!r}; resume it with the same {key} or give a new --run")


def stored_config(store, run: str, kind: str) -> dict:
    """The configuration a run was started with (for `--resume RUN` without the options)."""
    info = store.run(run)
    try:
        config = json.loads(info.notes).get(kind)
    except (ValueError, AttributeError):
        config = None
    if not isinstance(config, dict):
        raise UserError(f"run {run!r} was not started by `nnscale {kind}`; give the MODEL and options "
                        "to resume it with")
    return config


class Recorder:
    """Measures points of one run, reusing finished ones and storing each new one at once."""

    def __init__(self, store, run_id: int, done: dict[str, Measurement], progress=None,
                 runner: Callable[[PointSpec], Measurement] = run_point,
                 flop_per_sample: Callable[[Workload], int | None] = lambda w: None,
                 peak_flop_per_s: Callable[[Measurement], float | None] = lambda m: None) -> None:
        self.store, self.run_id, self.done = store, run_id, dict(done)
        self.progress = progress or NullProgress()
        self.runner = runner
        self.flop_per_sample, self.peak_flop_per_s = flop_per_sample, peak_flop_per_s
        self.measured: list[Measurement] = []  # this run's points in order, reused ones included

    def point(self, spec: PointSpec) -> Measurement:
        """Measure one point in its processes, back to back, and store it (or reuse it)."""
        key = spec.workload.key()
        if key in self.done:
            return self.reuse(key)
        self.progress.point_start(spec.workload)
        start = time.monotonic()
        m = run_processes(spec, self.runner)  # k fresh workers, one point
        return self.finish(m, time.monotonic() - start)

    def reuse(self, key: str) -> Measurement:
        """A point finished in the run before it was resumed."""
        m = self.done[key]
        self.progress.point_done(m, 0.0, reused=True)
        self.measured.append(m)
        return m

    def process(self, spec: PointSpec, index: int) -> tuple[Measurement, float | None, float]:
        """Process `index` of `spec`'s point in one fresh worker, stored at once if it measured
        (`Store.add_process`: a point measured in rounds, measure/rounds.py); (the process's
        measurement, the steal share around it, its wall seconds)."""
        start = time.monotonic()
        m, steal = measure_process(process_spec(spec), self.runner)
        wall = time.monotonic() - start
        if m.status in MEASURED_STATUSES:
            self.store.add_process(self.run_id, index, m, steal)  # committed before we go on
        return m, steal, wall

    def stored_processes(self) -> dict[str, list[tuple[Measurement, float | None]]]:
        """The run's stored processes of points not finished (a resumed run continues them)."""
        return self.store.process_results(self.run_id)

    def finish(self, m: Measurement, wall_s: float) -> Measurement:
        """Store a point that is finished (measured, combined or failed), with its FLOP/s and MFU
        and the wall seconds its processes took."""
        m = derive(m, self.flop_per_sample(m.workload), self.peak_flop_per_s(m))
        stats = replace(m.stats, timing=replace(m.stats.timing, point_wall_s=wall_s))
        m = Measurement(m.workload, m.status, m.samples_ms, stats, m.error)
        self.store.add_measurement(self.run_id, m)  # committed before we go on
        self.done[m.workload.key()] = m
        self.progress.point_done(m, wall_s)
        self.measured.append(m)
        return m


_FLOPS: dict[tuple, tuple[int, int] | None] = {}


def flop_counter() -> Callable[[Workload], int | None]:
    """FLOPs per sample of a workload (nnscale's count, docs/statistics.md), counted once per model."""
    from nnscale.netstats import network_stats

    cache = _FLOPS  # per model and input: a study asks for the same net in many sweeps

    def flops(w: Workload) -> int | None:
        if is_lm(w.model):  # per sequence and mode: prefill, decode or training (measure/lm.py)
            key = (w.model, tuple(w.input_shape), w.mode)
            if key not in cache:
                cache[key] = (lm_flops_per_sample(w),) * 2
            return cache[key][0]
        key = (w.model, tuple(w.input_shape))
        if key not in cache:
            try:
                s = network_stats(w.model, tuple(w.input_shape))
                cache[key] = (s.forward_flops, s.training_flops)
            except UserError:
                raise
            except Exception:  # a model the counter cannot trace: no FLOP/s, the point still counts
                cache[key] = None
        pair = cache[key]
        return None if pair is None else pair[0] if w.mode == "inference" else pair[1]

    return flops


def peak_lookup() -> Callable[[Measurement], float | None]:
    """The measured GEMM peak of a point's device at its precision, from `nnscale device`'s cache."""
    from nnscale.measure.device import cached_profile

    cache: dict[str, object] = {}

    def peak(m: Measurement) -> float | None:
        name = m.stats.host.device_name
        if not name:
            return None
        if name not in cache:
            cache[name] = cached_profile(name)
        profile = cache[name]
        return None if profile is None else profile.gemm_flop_per_s.get(m.workload.precision)

    return peak
