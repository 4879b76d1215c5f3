"""Synthetic-but-realistic runs: points generated from a known alpha-beta truth plus noise.

The shape is what `nnscale allreduce` and `nnscale scale` store (src/nnscale/distributed/): all-reduce
points with size_bytes/time_ms at world size 2, DDP training points with step_time_ms and the
forward/backward/optimizer breakdown, one-worker points as the compute reference. Two links, as
bench/validate_prediction.py measures them: loopback (both ranks on one node, no cap) and a veth pair
between two network namespaces ("2 nodes") capped by `tc tbf` at 1000, 200 and 50 Mbit/s. Each
capped point carries its rate and node count in its workload (link_cap_bit_per_s, nnodes = 2) and,
as `nnscale scale/allreduce` store them, in its stats (bandwidth_cap_bit_per_s, nnodes).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from nnscale.predict.calibrate import CommParams, Point, predict_point
from nnscale.predict.model import Bucketing, Layer, ModelProfile
from nnscale.records import ALLREDUCE, DISTRIBUTED, DDPOptions, Measurement, Workload

# Loopback: 50 us per ring step, 2 GB/s. The veth pair: 300 us per step, its payload 93 % of the cap
# (its own uncapped rate never measured: inf). Shared: overlap 0.6, 2 ms per-step overhead.
TRUTH = CommParams(alpha_s=50e-6, bandwidth=2e9, inter_alpha_s=300e-6, inter_bandwidth=math.inf,
                   cap_efficiency=0.93, overlap=0.6, overhead_s=2e-3)
CAPS_BIT = (None, 1e9, 200e6, 50e6)  # uncapped loopback, then the veth pair at three tc tbf rates
SIZES = (4096, 65536, 1 << 20, 8 << 20)
COMPUTE_S = {8: 0.045, 32: 0.160}  # one worker's step at each batch


def small_net() -> ModelProfile:
    """A LeNet-sized net, 1.2M parameters (4.8 MB of gradients), most of them in the last layers."""
    layers = (Layer(500, 3e6), Layer(25_000, 8e6), Layer(800_000, 0.8e6), Layer(400_000, 0.4e6))
    return ModelProfile("small-net", params=sum(x.params for x in layers), forward_flops=12.2e6,
                        training_flops=36.6e6, layers=layers)


def _link(cap, burst: dict | None = None) -> dict:
    # The store keys points by workload: points under different caps differ in their link fields.
    bits = (burst or {}).get("bandwidth_cap_burst_bits")
    return {"nnodes": 2 if cap else 1, "link_cap_bit_per_s": cap or None,
            "link_cap_burst_bytes": bits / 8 if bits else None}


def _ar(size: int, t: float, cap, extra: dict | None = None) -> Measurement:
    w = Workload(ALLREDUCE, "training", 1, (), world_size=2, threads=1, kind=ALLREDUCE,
                 message_bytes=size, **_link(cap, extra))
    stats = {"size_bytes": size, "time_ms": 1e3 * t, "step_time_ms": 1e3 * t, "nnodes": 2 if cap else 1,
             **(extra or {})}
    return Measurement(w, "ok", stats=stats)


def _step(model: str, batch: int, p: int, t: float, cap, extra: dict) -> Measurement:
    ddp = dict(kind=DISTRIBUTED, strategy="ddp", ddp=DDPOptions(), **_link(cap, extra)) if p > 1 else {}
    w = Workload(model, "training", batch, (1, 28, 28), world_size=p, threads=1, **ddp)
    stats = {"step_time_ms": 1e3 * t, **extra}
    if cap:
        stats["bandwidth_cap_bit_per_s"] = cap
    return Measurement(w, "ok", stats=stats)


def synthetic_records(truth: CommParams = TRUTH, noise: float = 0.02, seed: int = 0,
                      net: ModelProfile | None = None, burst_s: float | None = None) -> list[Measurement]:
    """A run of `net` (default: small_net): one-worker points, then at each cap four all-reduce
    sizes and two DDP training points at world size 2, each time the truth's times x lognormal noise.
    With `burst_s`, every capped point records a tbf bucket of burst_s seconds of tokens (stats
    bandwidth_cap_burst_bits, as `--bandwidth-cap-burst` stores it) and the truth includes it."""
    rng = np.random.default_rng(seed)
    net = net or small_net()
    jitter = lambda: float(np.exp(rng.normal(0.0, noise)))  # noqa: E731
    out = [_step(net.name, b, 1, c * jitter(), None, {}) for b, c in COMPUTE_S.items()]
    for cap in CAPS_BIT:
        cap_b = cap / 8 if cap else None
        burst = {"bandwidth_cap_burst_bits": burst_s * cap} if cap and burst_s else {}
        burst_b = burst_s * cap_b if burst else None
        for size in SIZES:
            t = predict_point(truth, Point("allreduce", "", 2, 1.0, size_bytes=size, cap=cap_b, burst=burst_b,
                                           inter=bool(cap)))
            out.append(_ar(size, t * jitter(), cap, burst))
        for b, c in COMPUTE_S.items():
            prof = replace(net, step_time_s=c, measured_batch=b)
            t = predict_point(truth, Point("step", "", 2, 1.0, cap=cap_b, burst=burst_b, profile=prof, batch=b,
                                           bucketing=Bucketing(), inter=bool(cap)))
            extra = {"bytes_allreduced_per_step": net.grad_bytes, "ddp_options": {"bucket_mb": 25.0}, **burst}
            out.append(_step(net.name, b, 2, t * jitter(), cap, extra))
    return out
