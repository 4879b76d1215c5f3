"""Calibration: fit alpha, B, overlap and per-step overhead to measured points (scipy least squares).

Two kinds of stored points take part (see `records.Measurement`):
- `nnscale allreduce` points: model "allreduce", stats size_bytes and time_ms, at world_size p.
  Predicted by the ring formula 2(p-1) alpha + 2(p-1)/p n / B (comm.py).
- data-parallel training points at world_size >= 2: the measured step time. Predicted by
  `ddp_step_time` from the single-device compute (the run's world_size = 1 point of the same model,
  batch, precision and threads, or else the point's own forward_ms + backward_ms + optimizer_ms).

A point measured behind a bandwidth cap (`tc tbf`) carries the cap in its stats (CAP_KEYS); the cap
is a second per-byte cost in series with the software's own: 1/B_point = 1/B + 1/cap.

Residuals are relative (predicted / measured - 1), so a 4 KB all-reduce and a 1 s step weigh alike.
Parameters are fitted in log space for alpha and B (positive, spanning decades), plainly for overlap
(bounded to [0, 1]) and overhead (>= 0). scipy.optimize.least_squares, trust-region reflective.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares

from nnscale.errors import UserError
from nnscale.predict.catalogue import Device, Link
from nnscale.predict.comm import allreduce_time_s
from nnscale.predict.model import Bucketing, Cluster, ModelProfile, ddp_step_time
from nnscale.records import Measurement

PARAMS = ("alpha_s", "bandwidth", "overlap", "overhead_s")
USABLE = ("ok", "unstable")
# Stats keys a capped point may carry, and the factor to bytes/s.
CAP_KEYS = {"bandwidth_cap_bytes_per_s": 1.0, "bandwidth_cap_bit_per_s": 1 / 8, "tc_rate_bit_per_s": 1 / 8}
STEP_KEYS = ("step_time_ms_median", "step_time_ms", "median_ms")
_TBF = re.compile(r"\btbf=([0-9.]+)(kbit|mbit|gbit|bit)\b", re.IGNORECASE)
_TC_UNITS = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
# A device for measured compute: its step time comes from the run, so no peak is ever looked up.
MEASURED = Device("measured", "measured on this machine", {}, math.inf, math.inf)


@dataclass(frozen=True, slots=True)
class CommParams:
    alpha_s: float = 20e-6
    bandwidth: float = 1e9  # bytes/s
    overlap: float = 1.0
    overhead_s: float = 0.0

    def link(self, cap: float | None = None, name: str = "fitted") -> Link:
        bw = self.bandwidth if cap is None else 1 / (1 / self.bandwidth + 1 / cap)
        return Link(name=name, alpha_s=self.alpha_s, bandwidth=bw)


@dataclass(frozen=True, slots=True)
class Point:
    """One measured point the fit can use."""

    kind: str  # "allreduce" or "step"
    label: str
    world_size: int
    measured_s: float
    size_bytes: float = 0.0  # allreduce
    cap: float | None = None  # bytes/s
    profile: ModelProfile | None = None  # step: step_time_s is the single-device compute
    batch: int = 0
    bucketing: Bucketing = Bucketing()


@dataclass(frozen=True, slots=True)
class FitResult:
    params: CommParams
    free: tuple[str, ...]
    labels: tuple[str, ...]
    residuals: tuple[float, ...]  # predicted / measured - 1, per point
    source: str

    @property
    def rms(self) -> float:
        return math.sqrt(sum(r * r for r in self.residuals) / len(self.residuals)) if self.residuals else 0.0

    @property
    def max_abs(self) -> float:
        return max((abs(r) for r in self.residuals), default=0.0)


def predict_point(params: CommParams, point: Point) -> float:
    """Seconds the model gives for `point` under `params`."""
    link = params.link(point.cap)
    if point.kind == "allreduce":
        return allreduce_time_s(point.size_bytes, point.world_size, link, "ring")
    cluster = Cluster(MEASURED, gpus_per_node=point.world_size, nodes=1, intra=link)
    return ddp_step_time(point.profile, cluster, point.batch, bucketing=point.bucketing,
                         overlap=params.overlap, overhead_s=params.overhead_s).step_s


# Each parameter <-> its coordinate in the search space, with bounds.
_TO = {"alpha_s": math.log10, "bandwidth": math.log10, "overlap": float, "overhead_s": lambda v: v * 1e3}
_FROM = {"alpha_s": lambda x: 10**x, "bandwidth": lambda x: 10**x, "overlap": float,
         "overhead_s": lambda x: x / 1e3}
_BOUNDS = {"alpha_s": (-8.0, 0.0), "bandwidth": (3.0, 13.0), "overlap": (0.0, 1.0), "overhead_s": (0.0, 1e5)}


def least_squares_fit(points: Sequence, predict: Callable, start: CommParams, free: Sequence[str],
                      source: str = "fit", measured: Callable = lambda p: p.measured_s) -> FitResult:
    """Fit the `free` parameters of `start` so that predict(params, point) matches measured(point)."""
    unknown = set(free) - set(PARAMS)
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}")

    def params_of(x) -> CommParams:
        return replace(start, **{name: _FROM[name](v) for name, v in zip(free, x, strict=True)})

    def residuals(x) -> np.ndarray:
        q = params_of(x)
        return np.array([predict(q, pt) / measured(pt) - 1 for pt in points])

    params = start
    if free:
        lo = np.array([_BOUNDS[n][0] for n in free])
        hi = np.array([_BOUNDS[n][1] for n in free])
        x0 = np.clip([_TO[n](getattr(start, n)) for n in free], lo, hi)
        x0 = np.where(x0 >= hi, hi - 1e-6 * (hi - lo), np.where(x0 <= lo, lo + 1e-6 * (hi - lo), x0))
        result = least_squares(residuals, x0, bounds=(lo, hi), method="trf", x_scale="jac")
        params = params_of(result.x)
    labels = tuple(getattr(pt, "label", str(i)) for i, pt in enumerate(points))
    res = tuple(float(r) for r in residuals([_TO[n](getattr(params, n)) for n in free]))
    return FitResult(params, tuple(free), labels, res, source)


def _cap(m: Measurement) -> float | None:
    """The point's bandwidth cap in bytes/s: a stats key (CAP_KEYS), or a `tbf=RATE` tag in the
    workload's framework (e.g. torch-gloo[tbf=200mbit]; the store keys points by workload, so points
    under different caps must differ there), RATE in tc's units (kbit, mbit, gbit: 1e3, 1e6, 1e9 bit/s)."""
    for key, factor in CAP_KEYS.items():
        v = m.stats.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v) * factor
    tag = _TBF.search(m.workload.framework)
    if tag:
        return float(tag.group(1)) * _TC_UNITS[tag.group(2).lower()] / 8
    return None


def step_time_s(m: Measurement) -> float | None:
    for key in STEP_KEYS:
        v = m.stats.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v) / 1e3
    return statistics.median(m.samples_ms) / 1e3 if m.samples_ms else None


def _ref_key(m: Measurement, threads: bool = True) -> tuple:
    w = m.workload
    return (w.model, w.batch_size, w.precision, w.threads if threads else None)


def _cap_text(cap: float | None) -> str:
    return "no cap" if cap is None else f"{cap * 8 / 1e6:g} Mbit/s"


def extract_points(records: Sequence[Measurement],
                   profiles: dict[str, ModelProfile] | None = None) -> tuple[list[Point], list[str]]:
    """The usable points of a run, and one line per point left out saying why."""
    profiles = profiles or {}
    usable = [m for m in records if m.status in USABLE]
    refs: dict[tuple, float] = {}
    for m in usable:  # single-device compute references
        w = m.workload
        if w.model != "allreduce" and w.mode == "training" and w.world_size == 1 and step_time_s(m):
            refs.setdefault(_ref_key(m), step_time_s(m))
            refs.setdefault(_ref_key(m, threads=False), step_time_s(m))
    points, skipped = [], [f"{m.workload.model} p={m.workload.world_size}: status {m.status}"
                           for m in records if m.status not in USABLE]
    for m in usable:
        w, s, cap = m.workload, m.stats, _cap(m)
        if w.model == "allreduce":
            size, t = s.get("size_bytes"), s.get("time_ms")
            if w.world_size >= 2 and isinstance(size, (int, float)) and size > 0 and t and t > 0:
                points.append(Point("allreduce", f"allreduce {size:g} B p={w.world_size} {_cap_text(cap)}",
                                    w.world_size, t / 1e3, size_bytes=float(size), cap=cap))
            else:
                skipped.append(f"allreduce p={w.world_size}: needs world_size >= 2, size_bytes, time_ms")
            continue
        if w.mode != "training" or w.world_size < 2:
            continue
        label = f"{w.model} b={w.batch_size} p={w.world_size} {_cap_text(cap)}"
        step = step_time_s(m)
        # Compute: one worker with the same threads; else this point's own breakdown (its workers may
        # have fewer threads than a lone worker had); else one worker whatever its threads.
        compute = refs.get(_ref_key(m))
        if compute is None and all(isinstance(s.get(k), (int, float)) for k in ("forward_ms", "backward_ms")):
            compute = (s["forward_ms"] + s["backward_ms"] + s.get("optimizer_ms", 0.0)) / 1e3
        compute = compute or refs.get(_ref_key(m, threads=False))
        base = profiles.get(w.model)
        grad_bytes = s.get("bytes_allreduced_per_step")
        if isinstance(grad_bytes, (int, float)) and grad_bytes > 0:
            if base is None:
                base = ModelProfile(w.model, params=max(1, round(grad_bytes / 4)), forward_flops=1.0,
                                    training_flops=3.0, source="uniform from bytes_allreduced_per_step")
            else:  # a comm hook (fp16 compression) changes the bytes per gradient element
                base = replace(base, bytes_per_grad=max(1, round(grad_bytes / base.params)))
        if step is None or compute is None or base is None:
            why = ("no step time" if step is None else "no single-device point or forward/backward breakdown"
                   if compute is None else "no model profile or bytes_allreduced_per_step")
            skipped.append(f"{label}: {why}")
            continue
        profile = replace(base, step_time_s=compute, measured_batch=w.batch_size, optimizer_s=None)
        options = s.get("ddp_options") if isinstance(s.get("ddp_options"), dict) else {}
        bucketing = Bucketing(bucket_mb=float(options.get("bucket_mb", s.get("bucket_cap_mb", 25.0))))
        points.append(Point("step", label, w.world_size, step, cap=cap, profile=profile,
                            batch=w.batch_size, bucketing=bucketing))
    return points, skipped


def default_free(points: Sequence[Point]) -> tuple[str, ...]:
    """Which parameters the points can pin down (never more than there are points)."""
    sizes = {(p.size_bytes, p.world_size) for p in points if p.kind == "allreduce"}
    n_step = sum(p.kind == "step" for p in points)
    free = ["alpha_s", "bandwidth"] if len(sizes) >= 2 else []
    if not free and n_step >= 3:
        free = ["bandwidth"] if n_step == 3 else ["alpha_s", "bandwidth"]
    if n_step >= 1:
        free.append("overlap")
    if n_step >= 2:
        free.append("overhead_s")
    return tuple(free[: len(points)])


def initial_params(points: Sequence[Point]) -> CommParams:
    """A start for the search: B from the largest all-reduce (busbw), overlap 0.5 when fitted."""
    bw = 1e9
    ar = [p for p in points if p.kind == "allreduce"]
    if ar:
        big = max(ar, key=lambda p: p.size_bytes)
        bw = 2 * (big.world_size - 1) / big.world_size * big.size_bytes / big.measured_s
    return CommParams(alpha_s=20e-6, bandwidth=bw, overlap=0.5, overhead_s=0.0)


def fit_points(points: Sequence[Point], free: Sequence[str] | None = None, source: str = "fit") -> FitResult:
    free = default_free(points) if free is None else tuple(free)
    return least_squares_fit(points, predict_point, initial_params(points), free, source)


def fit(records: Sequence[Measurement], profiles: dict[str, ModelProfile] | None = None,
        free: Sequence[str] | None = None, run: str = "run") -> FitResult:
    """Fit alpha, B, overlap and overhead to a run's points; UserError if none are usable."""
    points, skipped = extract_points(records, profiles)
    if not points:
        why = f" ({skipped[0]}{f'; {len(skipped) - 1} more' if len(skipped) > 1 else ''})" if skipped else ""
        raise UserError(f"{run} has no usable points for calibration: it needs `nnscale allreduce` "
                        f"points or training points at world_size >= 2{why}")
    return fit_points(points, free, source=f"fit to {len(points)} points of {run}")
