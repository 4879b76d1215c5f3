"""A realistic run made up for the report tests: the shape of a real GPU sweep, no GPU needed.

Throughput saturates with batch as X(b) = peak·b/(b + b_half) (launch overhead amortised over the
batch), step times carry 1 % log-normal noise and a few slow outliers, and every statistic is
computed from those samples by nnscale.stats, exactly as `measure` does. So CIs, percentiles and the
knee behave like a real run's. Deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from nnscale.records import Measurement, Workload
from nnscale.stats import summarize, throughput

GIB = 2**30
IMAGENET, EPOCHS = 1_281_167, 90
# (peak samples/s, b_half, FLOPs per sample, activation bytes per sample, weight bytes)
NETS = {
    "resnet50": {"inference": (1250.0, 6.0, 8.2e9, 0.025 * GIB, 0.1 * GIB),
                 "training": (390.0, 7.0, 24.6e9, 0.095 * GIB, 0.4 * GIB)},
    "alexnet": {"inference": (9800.0, 16.0, 1.43e9, 0.004 * GIB, 0.25 * GIB),
                "training": (3100.0, 20.0, 4.3e9, 0.012 * GIB, 1.0 * GIB)},
}
SPEEDUP_BF16 = {"inference": 3.2, "training": 3.5}
PEAK_FLOPS = {"fp32": 19.5e12, "bf16": 312e12}  # A100 dense fp32 (no TF32) and bf16
DEVICE_MEMORY = 40 * GIB
BATCHES = {"inference": (1, 2, 4, 8, 16, 32, 64, 128, 256), "training": (8, 16, 32, 64, 128, 256, 512)}

ENVIRONMENT = {
    "captured_utc": "2026-03-07T09:30:00+00:00",
    "host": "gpu-node-01",
    "os": {"name": "Debian GNU/Linux 12 (bookworm)", "machine": "x86_64"},
    "python": {"version": "3.11.2"},
    "cpu": {"model": "AMD EPYC 7742 64-Core Processor", "logical_cores": 128},
    "memory_bytes": 512 * GIB,
    "versions": {"nnscale": "0.1.0", "torch": "2.14.1", "numpy": "2.4.6"},
    "nvidia_driver": "570.86.15",
    "torch": {"cuda_version": "12.8", "cuda_available": True, "gpu_count": 4,
              "gpus": [{"name": "NVIDIA A100-SXM4-40GB", "memory_bytes": DEVICE_MEMORY,
                        "capability": "8.0", "multiprocessors": 108}] * 4},
}


def _point(w: Workload, rate: float, flops: float, mem: float, rng, *, unstable=False,
           extra=None) -> Measurement:
    step = w.batch_size * w.world_size * 1000.0 / rate
    n = 40 if unstable else 80
    noise = rng.lognormal(0.0, 0.06 if unstable else 0.01, n)
    noise[rng.choice(n, 2, replace=False)] *= 1.08  # a couple of slow iterations, as always
    samples = step * noise
    s = summarize(samples)
    t = throughput(s, w.batch_size * w.world_size)
    stats = {
        "samples_per_s": t.samples_per_s, "samples_per_s_median": t.samples_per_s,
        "samples_per_s_ci_low": t.ci_low, "samples_per_s_ci_high": t.ci_high,
        "step_time_ms": s.median_ms, "step_time_ms_median": s.median_ms,
        "step_time_ms_mean": s.mean_ms, "step_time_ms_ci_low": s.ci_low_ms,
        "step_time_ms_ci_high": s.ci_high_ms, "rel_ci": s.rel_ci, "outliers": s.outliers,
        "warmup_iters": 12, "peak_memory_bytes": int(mem),
        "achieved_flop_per_s": flops * t.samples_per_s,
        "mfu": flops * t.samples_per_s / w.world_size / PEAK_FLOPS[w.precision],
    }
    if w.mode == "inference":
        stats |= {"latency_ms_p50": s.p50_ms, "latency_ms_p95": s.p95_ms,
                  "latency_ms_p99": s.p99_ms}
    stats |= extra or {}
    error = "CI of the mean ±3.5 % > target ±2 % after 40 iterations (30 s)" if unstable else ""
    return Measurement(w, "unstable" if unstable else "ok", tuple(samples), stats, error)


def sweep(models=("resnet50", "alexnet"), precisions=("fp32", "bf16"), seed=0,
          world_sizes=(1, 2), framework="torch") -> list[Measurement]:
    """Both modes, every batch, two precisions; one OOM point, one unstable point, and data-parallel
    training at batch 64 per worker on each of `world_sizes`."""
    rng = np.random.default_rng(seed)
    out = []
    for model in models:
        for mode in ("inference", "training"):
            peak, half, flops, act, weights = NETS.get(model, NETS["resnet50"])[mode]
            for prec in precisions:
                scale = SPEEDUP_BF16[mode] if prec == "bf16" else 1.0
                mem_scale = 0.5 if prec == "bf16" else 1.0
                for b in BATCHES[mode]:
                    w = Workload(model, mode, b, (3, 224, 224), "cuda:0", prec, framework=framework)
                    mem = weights + act * b * mem_scale
                    if mem > DEVICE_MEMORY:
                        out.append(Measurement(w, "oom", error="OutOfMemoryError: CUDA out of "
                                               "memory. Tried to allocate 3.06 GiB"))
                        continue
                    rate = peak * scale * b / (b + half)
                    unstable = model == models[0] and mode == "inference" and b == 1 and prec == "fp32"
                    out.append(_point(w, rate, flops, mem, rng, unstable=unstable))
            if mode != "training":
                continue
            for prec in precisions:
                scale = SPEEDUP_BF16[mode] if prec == "bf16" else 1.0
                b = 64
                one = peak * scale * b / (b + half)
                step1 = b * 1000.0 / one
                for ws in world_sizes:
                    if ws == 1:
                        continue
                    eff = 0.97 - 0.03 * math.log2(ws) - (0.03 if prec == "bf16" else 0.0)
                    rate = one * ws * eff
                    step = b * ws * 1000.0 / rate
                    comm = 0.35 * step * (1 - eff) / 0.06
                    extra = {"speedup_vs_1_worker": ws * eff, "efficiency_vs_1_worker": eff, "forward_ms": step1 / 3,
                             "backward_ms": 2 * step1 / 3 * 0.95, "optimizer_ms": step1 * 0.05,
                             "comm_exposed_ms": step - step1, "comm_total_ms": comm,
                             "time_to_train_min": EPOCHS * math.ceil(IMAGENET / (b * ws)) * step
                             / 60_000}
                    w = Workload(model, "training", b, (3, 224, 224), "cuda:0", prec,
                                 world_size=ws, framework=framework)
                    out.append(_point(w, rate, flops, weights + act * b * mem_scale, rng,
                                      extra=extra))
    return out


def predictions(model="resnet50", batch=64, precision="bf16", gpus_per_node=4,
                gpus=(1, 2, 4, 8, 16, 32, 64)) -> list[dict]:
    """Rows shaped like predict.model.PredictionRow.to_dict(), plus the configuration's names."""
    peak, half, *_ = NETS["resnet50"]["training"]
    one = peak * SPEEDUP_BF16["training"] * batch / (batch + half)
    rows = []
    for g in gpus:
        eff = 0.96 - 0.035 * math.log2(g) if g > 1 else 1.0
        rate = one * g * eff
        step = batch * g * 1000 / rate
        rows.append({"model": model, "batch_size": batch, "precision": precision,
                     "nodes": max(1, g // gpus_per_node), "gpus": g, "global_batch": batch * g,
                     "step_ms": step, "compute_ms": batch * 1000 / one, "comm_ms": step * 0.4,
                     "exposed_ms": step - batch * 1000 / one, "overhead_ms": 0.2,
                     "samples_per_s": rate, "speedup": g * eff, "efficiency": eff,
                     "time_to_train_s": IMAGENET * EPOCHS / rate, "buckets": 4,
                     "limited_by": "compute" if eff > 0.9 else "bandwidth (inter)"})
    return rows


def framework_sweep(seed=1) -> list[Measurement]:
    """ResNet-50 inference in fp32 run by four frameworks, as a framework comparison would store."""
    rng = np.random.default_rng(seed)
    out = []
    for fw, factor in (("torch", 1.0), ("onnxruntime", 1.12), ("tensorflow", 0.9), ("jax", 1.05)):
        peak, half, flops, act, weights = NETS["resnet50"]["inference"]
        for b in (1, 4, 16, 64, 256):
            w = Workload("resnet50", "inference", b, (3, 224, 224), "cuda:0", "fp32", framework=fw)
            out.append(_point(w, factor * peak * b / (b + half), flops, weights + act * b, rng))
    return out


NETSTATS_ROWS = [
    {"network": "ResNet-50", "model": "resnet50-v1", "input": "3x224x224", "seed_conv_layers": 49,
     "conv_layers": 53, "conv_depth": 49, "seed_fc_layers": 1, "fc_layers": 1,
     "seed_params": 25.5e6, "params": 25_557_032, "params_weights": 25_502_912,
     "seed_macs": 3.9e9, "macs": 3_857_973_248, "note": "He 2015 v1: stride 2 on the first 1x1"},
]


# Shared by the report tests (conftest.py and test modules import them from here: `from conftest`
# would pick whichever tests/*/conftest.py was imported first in a mixed selection).
HOSTILE = "<script>alert(1)</script>"


def hostile_points() -> list[Measurement]:
    """A net whose name is markup, one measured point and one failed, to check escaping."""
    good = [m for m in sweep(models=("resnet50",), precisions=("fp32",), world_sizes=(1,))
            if m.workload.mode == "inference" and m.workload.batch_size in (1, 2, 4)]
    out = [Measurement(Workload(HOSTILE, m.workload.mode, m.workload.batch_size,
                                m.workload.input_shape, m.workload.device, m.workload.precision),
                       m.status, m.samples_ms, m.stats, m.error) for m in good]
    out.append(Measurement(Workload(HOSTILE, "training", 8, (3, 224, 224), "cuda:0"), "error",
                           error=f"RuntimeError: {HOSTILE} & \"quotes\" | pipes"))
    return out


def slower(m: Measurement, factor: float) -> Measurement:
    """The same point with its throughput (and CI) scaled by `factor`."""
    t = m.stats.throughput
    scaled = {k: getattr(t, k) * factor for k in ("samples_per_s", "samples_per_s_ci_low",
                                                   "samples_per_s_ci_high")
              if getattr(t, k) is not None}
    stats = replace(m.stats, throughput=replace(t, **scaled))
    return Measurement(m.workload, m.status, m.samples_ms, stats, m.error)
