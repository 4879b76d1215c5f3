"""Calibration: fit per-link alpha and B, a cap efficiency, overlap and per-step overhead to measured
points (scipy least squares). The points come from `points.extract_points`.

Points on different links do not share link parameters (the pooled one-alpha-one-B fit was 24.9 %
off on real data, docs/benchmarks.md: loopback and a veth pair are different links). Two link
classes, by where the ranks were (points.Point.inter):
- intra: every rank on one node (loopback on a CPU machine): alpha_s, bandwidth;
- inter: ranks on >= 2 nodes (the veth pair between two network namespaces): inter_alpha_s,
  inter_bandwidth (the path's own rate; fitted only when some inter point had no cap).
A `tc tbf` cap on a point's link does not add a link: the cap is a known rate, the payload gets a
fraction of it, `cap_efficiency`, one number for every cap (a parameter per cap would leave 2-3
points per parameter in leave-one-out, and the fraction is the same physics at every rate: tbf counts
whole frames, 1514 bytes on the wire per 1448-byte TCP segment at MTU 1500, 1448 / 1514 = 0.956).
The cap and the path are stages of one pipeline (TCP streams through socket buffers: the sender's
copy and the qdisc's dequeue overlap), so the slower one sets the rate:
    B_point = min(B_class, cap_efficiency x cap)
not the series 1/B + 1/cap, which charged 1 MB at 1000 Mbit/s 24 % too much with loopback's B.

The tbf bucket (tc-tbf(8), ALGORITHM: "On creation, the TBF is stocked with tokens which correspond
to the amount of traffic that can be burst in one go. Tokens arrive at a steady rate, until the
bucket is full"). A bucket holding k bytes of tokens at the start of a transfer of W wire bytes, rate
r, path rate B: the sender runs at B while tokens last, tokens(t) = k + r t - B t, then at r, so
    T = max(W / B, (W - k) / r)
(the first bytes at path speed, the rest at the cap; the tokens arriving during the burst included).
For payload m (W = m / cap_efficiency) that is today's m / min(B, eff r) less a credit
    min(k / r, m / (eff r) - m / B),   k / r = min(b / r, idle)   (tbf_credit_s)
where b is the bucket and idle the time the link had to refill it. Whether the bucket is full
depends on the gap before the transfer:
- a training step's first all-reduce follows the optimizer, the forward and part of backward, with
  the link idle (pytorch-mnist-net: 15-20 ms against b / r = 1 ms in bench/validate_prediction.py):
  full, so its call gets the credit once per step (model.ddp_step_time's first_call_credit_s);
- `nnscale allreduce` times calls back to back (measure's loop, a few microseconds between calls).
  In steady state each call starts with the tokens of that gap only, and over a call plus its gap
  the bucket cannot give more than r (call + gap): T = max(T_path, W / r - gap), the bucket size
  drops out and the credit is the gap (microseconds). So all-reduce points keep the plain model.
Points without a recorded bucket (the workload's link_cap_burst_bytes) keep the plain model too.

Predicted times: all-reduce points by the ring formula 2(p-1) alpha + 2(p-1)/p n / B (comm.py); step
points by `ddp_step_time` with the shared overlap and overhead. Residuals are relative
(predicted / measured - 1), so a 16 KB all-reduce and a 1 s step weigh alike. alpha and B are
fitted in log space (positive, spanning decades), the efficiency and overlap plainly within their
bounds, the overhead in ms (>= 0). scipy.optimize.least_squares, trust-region reflective.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares

from nnscale.errors import UserError
from nnscale.predict.catalogue import Device, Link
from nnscale.predict.comm import allreduce_time_s
from nnscale.predict.model import Cluster, ModelProfile, ddp_step_time
from nnscale.predict.points import (  # noqa: F401 (re-exported: callers read them from here)
    Point,
    busbw,
    distinct_allreduces,
    extract_points,
    loaded_ratio,
    step_time_s,
)
from nnscale.records import ALLREDUCE, MEASURED_STATUSES, Measurement

PARAMS = ("alpha_s", "bandwidth", "inter_alpha_s", "inter_bandwidth", "cap_efficiency", "overlap", "overhead_s")
# A device for measured compute: its step time comes from the run, so no peak is ever looked up.
MEASURED = Device("measured", "measured on this machine", {}, math.inf, math.inf)


@dataclass(frozen=True, slots=True)
class CommParams:
    # Intra-node link class (all ranks on one node; loopback on a CPU machine). alpha_s: seconds per
    # ring step. With only p = 2 points it also carries the per-call host cost (enqueue on gloo's
    # worker thread, wake-up of the waiting caller): at p = 2 a call costs c + 2 alpha, c and alpha
    # cannot be told apart without a second world size, so they are one number.
    alpha_s: float = 20e-6
    bandwidth: float = 1e9  # bytes/s the intra-node path moves (memcpy, TCP stack, reduction)
    # Inter-node link class (ranks on >= 2 nodes), the same two numbers; inter_bandwidth is the path
    # without a cap, inf when no uncapped inter-node point measured it.
    inter_alpha_s: float = 20e-6
    inter_bandwidth: float = math.inf
    cap_efficiency: float = 1.0  # payload bytes/s per byte/s of a tbf cap (framing, ACKs): ~0.956
    overlap: float = 1.0  # share of the communication inside backward that is really hidden
    overhead_s: float = 0.0  # fixed per-step cost of a data-parallel step (DDP's hooks, sync)
    # The all-reduces the fit saw, (inter, cap, ranks, bytes, seconds) (measured_calls): not fitted,
    # carried to the links a step is predicted over (comm.measured_time_s).
    measured: tuple[tuple[bool, float | None, int, float, float], ...] = ()

    def link(self, cap: float | None = None, name: str = "fitted", inter: bool = False,
             curve: bool = True) -> Link:
        """The link a point ran over: its class's alpha, and min(path B, efficiency x cap); with
        `curve`, the all-reduces measured on that class and cap (`Link.measured`)."""
        alpha, bw = (self.inter_alpha_s, self.inter_bandwidth) if inter else (self.alpha_s, self.bandwidth)
        if cap is not None:
            bw = min(bw, self.cap_efficiency * cap)
        calls = tuple((p, n, t) for i, c, p, n, t in self.measured if i == inter and c == cap) if curve else ()
        return Link(name=name, alpha_s=alpha, bandwidth=bw, measured=calls)


def loaded_factors(records: Sequence[Measurement], lone: Measurement) -> tuple[tuple[int, float], ...]:
    """(N, factor) for each loaded reference of the run that matches the lone reference `lone`
    (model, batch, precision, threads, DDP options): how much slower its N copies computed
    (points.loaded_ratio), the latest per N. A loaded reference at another batch than the lone
    point is left out: the two must have run the same step."""
    w0, found = lone.workload, {}
    for m in records:
        w = m.workload
        if (m.status in MEASURED_STATUSES and w.loaded and w.mode == "training"
                and (w.model, w.batch_size, w.precision, w.threads, w.ddp)
                == (w0.model, w0.batch_size, w0.precision, w0.threads, w0.ddp)):
            ratio = loaded_ratio(m, lone)
            if ratio:
                found[w.concurrent_copies] = ratio
    return tuple(sorted(found.items()))


def measured_calls(points: Sequence[Point]) -> tuple[tuple[bool, float | None, int, float, float], ...]:
    """The all-reduce points as (inter, cap, ranks, bytes, seconds) for CommParams.measured. Where a
    link class, cap and world size has calls timed after compute (`nnscale allreduce
    --compute-before`, the study's calibration), only those: they are the calls as a DDP step
    meets them (distributed/allreduce.py AfterCompute); back-to-back ones elsewhere."""
    ar = [p for p in points if p.kind == ALLREDUCE]
    after = {(p.inter, p.cap, p.world_size) for p in ar if p.compute_before_ms > 0}
    return tuple((p.inter, p.cap, p.world_size, p.size_bytes, p.measured_s) for p in ar
                 if (p.compute_before_ms > 0) == ((p.inter, p.cap, p.world_size) in after))


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


def tbf_credit_s(payload_bytes: float, cap: float, burst_bytes: float, efficiency: float,
                 path_bandwidth: float, idle_s: float) -> float:
    """Seconds a transfer of `payload_bytes` through a tbf of rate `cap` (bytes/s) saves against
    payload / min(path, efficiency x cap), when the bucket (`burst_bytes`) had `idle_s` to refill
    (module docstring): min(k / r, m / (eff r) - m / B) with k / r = min(b / r, idle), >= 0.
    E.g. 1.72 MB at 1000 Mbit/s (r = 125e6 B/s), eff 0.956, b = 128000 B, long idle, B = inf:
    min(128000 / 125e6, 1.72e6 / (0.956 x 125e6)) = min(1.02 ms, 14.4 ms) = 1.02 ms."""
    slow_s = payload_bytes / (efficiency * cap)
    fast_s = payload_bytes / path_bandwidth
    return max(0.0, min(burst_bytes / cap, idle_s, slow_s - fast_s))


def predict_point(params: CommParams, point: Point) -> float:
    """Seconds the model gives for `point` under `params`."""
    if point.kind == ALLREDUCE:  # back-to-back calls: no bucket credit (module docstring)
        # The alpha-beta line alone: these points are what a step's link interpolates, and the
        # line is what stands beyond them.
        link = params.link(point.cap, inter=point.inter, curve=False)
        return allreduce_time_s(point.size_bytes, point.world_size, link, "ring")
    link = params.link(point.cap, inter=point.inter)
    credit = None
    if point.cap is not None and point.burst is not None:
        path = params.inter_bandwidth if point.inter else params.bandwidth
        p = point.world_size

        def credit(size: float, idle_s: float) -> float:  # a ring sends 2(p-1)/p of the bucket
            return tbf_credit_s(2 * (p - 1) / p * size, point.cap, point.burst, params.cap_efficiency,
                                path, idle_s)
    cluster = Cluster(MEASURED, gpus_per_node=point.world_size, nodes=1, intra=link)
    return ddp_step_time(point.profile, cluster, point.batch, bucketing=point.bucketing,
                         overlap=params.overlap, overhead_s=params.overhead_s,
                         first_call_credit_s=credit).step_s


# Each parameter <-> its coordinate in the search space, with bounds.
_LOG = (math.log10, lambda x: 10**x)
_TO_FROM = {"alpha_s": _LOG, "bandwidth": _LOG, "inter_alpha_s": _LOG, "inter_bandwidth": _LOG,
            "cap_efficiency": (float, float), "overlap": (float, float),
            "overhead_s": (lambda v: v * 1e3, lambda x: x / 1e3)}
_TO = {k: v[0] for k, v in _TO_FROM.items()}
_FROM = {k: v[1] for k, v in _TO_FROM.items()}
# alpha 10 ns .. 1 s; B 1 kB/s .. 10 TB/s; an efficiency below 5 % would be a broken measurement.
_BOUNDS = {"alpha_s": (-8.0, 0.0), "bandwidth": (3.0, 13.0), "inter_alpha_s": (-8.0, 0.0),
           "inter_bandwidth": (3.0, 13.0), "cap_efficiency": (0.05, 1.0), "overlap": (0.0, 1.0),
           "overhead_s": (0.0, 1e5)}


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


def _class_names(inter: bool) -> tuple[str, str]:
    return ("inter_alpha_s", "inter_bandwidth") if inter else ("alpha_s", "bandwidth")


def default_free(points: Sequence[Point]) -> tuple[str, ...]:
    """Which parameters the points can pin down (never more than there are points).

    Per link class: alpha with two different all-reduces on it (an intercept needs two sizes, or a
    size and a slope pinned elsewhere); its own B also when one of them had no cap. The cap efficiency
    with two different capped all-reduces. Without all-reduces, three or four training points pin the
    B (and alpha) of the class most of them ran on. Overlap with one training point, overhead with two.
    """
    free: list[str] = []
    for inter in (False, True):
        alpha, bw = _class_names(inter)
        if distinct_allreduces(points, inter) >= 2:
            free.append(alpha)
            if distinct_allreduces(points, inter, capped=False) >= 1:
                free.append(bw)
    if distinct_allreduces(points, capped=True) >= 2:
        free.append("cap_efficiency")
    steps = [p for p in points if p.kind == "step"]
    if not free and len(steps) >= 3:
        inter = Counter(p.inter for p in steps).most_common(1)[0][0]
        alpha, bw = _class_names(inter)
        capped = all(p.cap is not None for p in steps if p.inter == inter)
        free = ([] if len(steps) == 3 else [alpha]) + ["cap_efficiency" if capped else bw]
    if steps:
        free.append("overlap")
    if len(steps) >= 2:
        free.append("overhead_s")
    return tuple(free[: len(points)])


def initial_params(points: Sequence[Point]) -> CommParams:
    """A start for the search, per link class: B from the largest uncapped all-reduce (its busbw),
    alpha a quarter of the smallest all-reduce's time per ring step; efficiency 0.9, overlap 0.5."""
    start = {"cap_efficiency": 0.9, "overlap": 0.5, "overhead_s": 0.0}
    for inter in (False, True):
        alpha, bw = _class_names(inter)
        ar = [p for p in points if p.kind == ALLREDUCE and p.inter == inter]
        if ar:
            small = min(ar, key=lambda p: p.size_bytes)
            start[alpha] = small.measured_s / (4 * (small.world_size - 1))
        free_ar = [p for p in ar if p.cap is None]
        if free_ar:
            start[bw] = busbw(max(free_ar, key=lambda p: p.size_bytes))
        elif any(p.inter == inter and p.cap is None for p in points):  # steps alone measured the path
            start[bw] = 1e9
    return CommParams(**start)


def fit_points(points: Sequence[Point], free: Sequence[str] | None = None, source: str = "fit") -> FitResult:
    free = default_free(points) if free is None else tuple(free)
    start = replace(initial_params(points), measured=measured_calls(points))
    return least_squares_fit(points, predict_point, start, free, source)


def fit(records: Sequence[Measurement], profiles: dict[str, ModelProfile] | None = None,
        free: Sequence[str] | None = None, run: str = "run") -> FitResult:
    """Fit the link, overlap and overhead parameters to a run's points; UserError if none are usable."""
    points, skipped = extract_points(records, profiles)
    if not points:
        why = f" ({skipped[0]}{f'; {len(skipped) - 1} more' if len(skipped) > 1 else ''})" if skipped else ""
        raise UserError(f"{run} has no usable points for calibration: it needs `nnscale allreduce` "
                        f"points or training points at world_size >= 2{why}")
    return fit_points(points, free, source=f"fit to {len(points)} points of {run}")


def describe(params: CommParams, free: Sequence[str]) -> str:
    """The fitted values, in the units people read (us, GB/s, Mbit/s-independent fractions, ms)."""
    parts = []
    if "alpha_s" in free or "bandwidth" in free:
        parts.append(f"intra-node alpha {1e6 * params.alpha_s:.1f} us, B {params.bandwidth / 1e9:.3g} GB/s")
    if "inter_alpha_s" in free or "inter_bandwidth" in free:
        bw = f", B {params.inter_bandwidth / 1e9:.3g} GB/s" if "inter_bandwidth" in free else ""
        parts.append(f"inter-node alpha {1e6 * params.inter_alpha_s:.1f} us{bw}")
    if "cap_efficiency" in free:
        parts.append(f"cap efficiency {params.cap_efficiency:.3f}")
    parts.append(f"overlap {params.overlap:.2f}, overhead {1e3 * params.overhead_s:.2f} ms")
    return "; ".join(parts)
