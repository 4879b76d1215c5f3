"""Synthetic-but-realistic runs: points generated from a known alpha-beta truth plus noise.

The shape is what `nnscale allreduce` and `nnscale scale` store (src/nnscale/distributed/): all-reduce
points with size_bytes/time_ms at world size 2, DDP training points with step_time_ms and the
forward/backward/optimizer breakdown, one-worker points as the compute reference; each capped point
carries its `tc tbf` rate in its framework tag (torch-gloo[tbf=200mbit]) and, for small-net's
training points, also as stats["bandwidth_cap_bit_per_s"].
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from nnscale.predict.calibrate import CommParams, Point, predict_point
from nnscale.predict.model import Bucketing, Layer, ModelProfile
from nnscale.records import Measurement, Workload

TRUTH = CommParams(alpha_s=80e-6, bandwidth=1.5e9, overlap=0.6, overhead_s=2e-3)
CAPS_BIT = (None, 1e9, 200e6, 50e6)  # uncapped loopback and three tc tbf rates
SIZES = (4096, 65536, 1 << 20, 8 << 20)
COMPUTE_S = {8: 0.045, 32: 0.160}  # one worker's step at each batch


def small_net() -> ModelProfile:
    """A LeNet-sized net, 1.2M parameters (4.8 MB of gradients), most of them in the last layers."""
    layers = (Layer(500, 3e6), Layer(25_000, 8e6), Layer(800_000, 0.8e6), Layer(400_000, 0.4e6))
    return ModelProfile("small-net", params=sum(x.params for x in layers), forward_flops=12.2e6,
                        training_flops=36.6e6, layers=layers)


def _framework(cap) -> str:
    # The store keys points by workload: points under different caps differ in their framework tag.
    return f"torch-gloo[tbf={cap / 1e6:g}mbit]" if cap else "torch-gloo"


def _ar(size: int, t: float, cap) -> Measurement:
    w = Workload("allreduce", "training", 1, (size // 4,), world_size=2, threads=1, framework=_framework(cap))
    stats = {"size_bytes": size, "time_ms": 1e3 * t, "step_time_ms": 1e3 * t}
    return Measurement(w, "ok", stats=stats)


def _step(model: str, batch: int, p: int, t: float, cap, extra: dict) -> Measurement:
    w = Workload(model, "training", batch, (1, 28, 28), world_size=p, threads=1, framework=_framework(cap))
    stats = {"step_time_ms": 1e3 * t, **extra}
    if cap and model == "small-net":  # the other way to say it: a stats key
        stats["bandwidth_cap_bit_per_s"] = cap
    return Measurement(w, "ok", stats=stats)


def synthetic_records(truth: CommParams = TRUTH, noise: float = 0.02, seed: int = 0,
                      net: ModelProfile | None = None) -> list[Measurement]:
    """A run of `net` (default: small_net): one-worker points, then at each cap four all-reduce
    sizes and two DDP training points at world size 2, each time the truth's times x lognormal noise."""
    rng = np.random.default_rng(seed)
    net = net or small_net()
    jitter = lambda: float(np.exp(rng.normal(0.0, noise)))  # noqa: E731
    out = [_step(net.name, b, 1, c * jitter(), None, {}) for b, c in COMPUTE_S.items()]
    for cap in CAPS_BIT:
        cap_b = cap / 8 if cap else None
        for size in SIZES:
            t = predict_point(truth, Point("allreduce", "", 2, 1.0, size_bytes=size, cap=cap_b))
            out.append(_ar(size, t * jitter(), cap))
        for b, c in COMPUTE_S.items():
            prof = replace(net, step_time_s=c, measured_batch=b)
            t = predict_point(truth, Point("step", "", 2, 1.0, cap=cap_b, profile=prof, batch=b,
                                           bucketing=Bucketing()))
            extra = {"bytes_allreduced_per_step": net.grad_bytes, "ddp_options": {"bucket_mb": 25.0}}
            out.append(_step(net.name, b, 2, t * jitter(), cap, extra))
    return out
