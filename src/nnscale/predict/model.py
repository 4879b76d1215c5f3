"""The data-parallel step model: compute + the gradient all-reduce not hidden behind backward + overhead.

    step = forward + backward + optimizer + exposed communication + fixed per-step overhead

Compute is measured on one device (`ModelProfile.step_time_s`) or estimated as FLOPs / (peak x
efficiency). Communication follows PyTorch DDP (S. Li et al., "PyTorch Distributed: Experiences on
Accelerating Data Parallel Training", PVLDB 13(12), 2020, §3.2.3-3.2.4 and §4.2): gradients are
packed into buckets in reverse order of the parameters (the order backward produces them), the
first bucket capped at 1 MiB (torch.distributed._DEFAULT_FIRST_BUCKET_BYTES), the others at
bucket_cap_mb = 25 MiB; a bucket's all-reduce starts when its last gradient is ready and the
previous bucket's all-reduce is done (one communication stream, so the link serialises them).
Whatever finishes after backward ends is exposed. `overlap` (0..1, fitted) scales how much of the
communication that falls inside backward is really hidden: 1 = the timeline above, 0 = none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from nnscale.errors import UserError
from nnscale.predict.catalogue import Device, Link
from nnscale.predict.comm import ALGORITHMS, cluster_allreduce

MIB = 2**20
DEFAULT_BUCKET_MB = 25.0  # DDP's bucket_cap_mb default (MiB)
DEFAULT_FIRST_BUCKET_MB = 1.0  # torch.distributed._DEFAULT_FIRST_BUCKET_BYTES = 1 MiB
# SGD with momentum in fp32 (also under AMP, whose master weights, grads and state are fp32):
# read param, grad, momentum; write param, momentum = 5 x 4 bytes per parameter, memory-bound.
OPTIMIZER_BYTES_PER_PARAM = 20
# Fraction of peak a CNN's training reaches when nothing better is known: tf_cnn_benchmarks' P100
# ResNet-50 runs 219 img/s (TensorFlow's published benchmarks, DGX-1, batch 64) x 22.9 GFLOP per
# image (nnscale stats resnet50-v1) = 5.0 TFLOP/s of 10.6 = 47 %; rounded down. An fp32 figure:
# override it with --efficiency or a measured run.
DEFAULT_EFFICIENCY = 0.45
UNIFORM_LAYERS = 50  # without a per-layer table, gradients are assumed to arrive evenly
COMPUTE_BOUND = 0.05  # a point whose exposed comm + overhead is under 5 % of its step "scales"


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer in forward order: its parameters and its share of the work (any unit, e.g. MACs)."""

    params: int
    work: float


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What the model needs to know about a network. FLOPs are per sample."""

    name: str
    params: int
    forward_flops: float
    training_flops: float  # forward + backward
    bytes_per_grad: int = 4
    step_time_s: float | None = None  # measured single-device step at measured_batch
    measured_batch: int | None = None
    optimizer_s: float | None = None  # measured optimizer part of step_time_s, if known
    layers: tuple[Layer, ...] = ()  # forward order; empty = uniform
    source: str = "statistics"

    def __post_init__(self) -> None:
        for what, v in (("parameters", self.params), ("training FLOPs", self.training_flops),
                        ("bytes per gradient element", self.bytes_per_grad)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise UserError(f"model {self.name}: {what} must be positive, got {v!r}")
        if not (0 <= self.forward_flops <= self.training_flops):
            raise UserError(f"model {self.name}: forward FLOPs must be in [0, training FLOPs]")
        if self.step_time_s is not None and not (self.step_time_s > 0 and (self.measured_batch or 0) > 0):
            raise UserError(f"model {self.name}: a measured step time needs step time > 0 and its batch > 0")

    @property
    def grad_bytes(self) -> float:
        return self.params * self.bytes_per_grad


@dataclass(frozen=True, slots=True)
class Cluster:
    """nodes x gpus_per_node devices; `intra` joins a node's devices, `inter` the nodes."""

    device: Device
    gpus_per_node: int
    nodes: int
    intra: Link
    inter: Link | None = None
    nics_per_node: int = 1
    algorithm: str = "ring"

    def __post_init__(self) -> None:
        for what, v in (("GPUs per node", self.gpus_per_node), ("nodes", self.nodes),
                        ("NICs per node", self.nics_per_node)):
            if not (isinstance(v, int) and v >= 1):
                raise UserError(f"{what} must be a whole number >= 1, got {v!r}")
        if self.nodes > 1 and self.inter is None:
            raise UserError("more than one node needs an inter-node link (--inter-link)")
        if self.algorithm not in ALGORITHMS:
            raise UserError(f"unknown algorithm {self.algorithm!r}; known: {', '.join(ALGORITHMS)}")

    @property
    def world_size(self) -> int:
        return self.gpus_per_node * self.nodes

    def with_nodes(self, nodes: int, gpus_per_node: int | None = None) -> Cluster:
        return replace(self, nodes=nodes, gpus_per_node=gpus_per_node or self.gpus_per_node)


@dataclass(frozen=True, slots=True)
class StepBreakdown:
    """One data-parallel step, in seconds."""

    forward_s: float
    backward_s: float
    optimizer_s: float
    comm_s: float  # all buckets' all-reduces, end to end on the link
    comm_latency_s: float  # their alpha part
    exposed_s: float  # the part not hidden behind backward
    overhead_s: float
    buckets: int
    algorithm: str
    bottleneck: str

    @property
    def compute_s(self) -> float:
        return self.forward_s + self.backward_s + self.optimizer_s

    @property
    def step_s(self) -> float:
        return self.compute_s + self.exposed_s + self.overhead_s

    def limited_by(self) -> str:
        """What keeps this point from linear scaling: compute (nothing), bandwidth, latency, overhead."""
        lost = self.exposed_s + self.overhead_s
        if lost <= COMPUTE_BOUND * self.step_s:
            return "compute"
        share = self.comm_latency_s / self.comm_s if self.comm_s else 0.0
        terms = {f"bandwidth ({self.bottleneck})": self.exposed_s * (1 - share),
                 "latency": self.exposed_s * share, "overhead": self.overhead_s}
        return max(terms, key=terms.get)


def compute_times(profile: ModelProfile, device: Device, batch: int, precision: str = "fp32",
                  efficiency: float = DEFAULT_EFFICIENCY) -> tuple[float, float, float]:
    """(forward, backward, optimizer) seconds of one step of `batch` samples on one device."""
    if batch < 1:
        raise UserError(f"batch per GPU must be >= 1, got {batch}")
    fwd_share = profile.forward_flops / profile.training_flops
    if profile.step_time_s is not None:
        # Measured: scaled linearly from the measured batch (the step is compute-bound there).
        total = profile.step_time_s * batch / profile.measured_batch
        opt = min(profile.optimizer_s or 0.0, total)
        fb = total - opt
    else:
        if not 0 < efficiency <= 1:
            raise UserError(f"efficiency must be in (0, 1], got {efficiency}")
        fb = profile.training_flops * batch / (device.peak(precision) * efficiency)
        opt = profile.params * OPTIMIZER_BYTES_PER_PARAM / device.memory_bandwidth
    return fb * fwd_share, fb * (1 - fwd_share), opt


@dataclass(frozen=True, slots=True)
class Bucketing:
    """How gradients are grouped into all-reduce calls.

    "ddp": PyTorch DDP's static buckets (reverse parameter order, first bucket `first_bucket_mb`,
    then `bucket_mb`, a bucket closing once it reaches its cap; Li et al. 2020 §3.2.3).
    "horovod": Horovod's Tensor Fusion (horovod docs/tensor-fusion.rst): a background loop wakes
    every `cycle_ms` (or as soon as its previous all-reduces finish), takes every gradient ready by
    then and reduces them in fusion buffers of at most `bucket_mb` (a larger tensor goes alone).
    Defaults until Horovod 0.21: 64 MB and 5 ms (changelog of 0.21.0, PR #2468).
    """

    policy: str = "ddp"
    bucket_mb: float = DEFAULT_BUCKET_MB
    first_bucket_mb: float = DEFAULT_FIRST_BUCKET_MB
    cycle_ms: float = 5.0

    def __post_init__(self) -> None:
        if self.policy not in ("ddp", "horovod"):
            raise UserError(f"unknown bucketing {self.policy!r}; known: ddp, horovod")
        if min(self.bucket_mb, self.first_bucket_mb, self.cycle_ms) <= 0:
            raise UserError("bucket sizes and the fusion cycle must be positive")


DDP = Bucketing()
HOROVOD = Bucketing("horovod", 64.0, 64.0, 5.0)


def gradient_arrivals(profile: ModelProfile, backward_s: float) -> list[tuple[float, float]]:
    """(bytes, ready time after backward starts) per layer with parameters, in backward order.

    Each layer's backward takes its share of `work`; its gradients are ready when it is done.
    """
    layers = profile.layers or tuple(
        Layer(params=profile.params / UNIFORM_LAYERS, work=1.0) for _ in range(UNIFORM_LAYERS))
    total_work = sum(layer.work for layer in layers)
    out, clock = [], 0.0
    for layer in reversed(layers):  # backward visits layers last to first
        clock += backward_s * (layer.work / total_work if total_work > 0 else 1 / len(layers))
        if layer.params > 0:
            out.append((layer.params * profile.bytes_per_grad, clock))
    return out


def buckets(profile: ModelProfile, backward_s: float, bucketing: Bucketing = DDP) -> list[tuple[float, float]]:
    """DDP's static buckets as (bytes, ready time after backward starts), in launch order."""
    out: list[tuple[float, float]] = []
    filled, cap = 0.0, bucketing.first_bucket_mb * MIB
    for size, ready in gradient_arrivals(profile, backward_s):
        filled += size
        if filled >= cap:  # the bucket is full: it launches once its last gradient is ready
            out.append((filled, ready))
            filled, cap = 0.0, bucketing.bucket_mb * MIB
    if filled > 0:
        out.append((filled, backward_s))
    return out


def fusion_calls(arrivals: list[tuple[float, float]], bucketing: Bucketing, cost) -> float:
    """Horovod's loop over gradient `arrivals`; `cost(bytes)` -> seconds of one call. Returns when
    the last call ends (seconds after backward starts)."""
    cycle, cap = bucketing.cycle_ms * 1e-3, bucketing.bucket_mb * MIB
    pending = sorted(arrivals, key=lambda a: a[1])
    i, last_wake, free_at = 0, 0.0, 0.0
    while i < len(pending):
        wake = max(last_wake + cycle, free_at)  # next cycle, or when the last round is done
        if pending[i][1] > wake:  # nothing ready: sleep whole cycles until something is
            wake += cycle * math.ceil((pending[i][1] - wake) / cycle)
        t, fused = wake, 0.0
        while i < len(pending) and pending[i][1] <= wake:  # all that is ready now, in order
            size = pending[i][0]
            if fused and fused + size > cap:  # the buffer is full: reduce it, start another
                t += cost(fused)
                fused = 0.0
            fused += size
            i += 1
        t += cost(fused)
        last_wake, free_at = wake, t
    return free_at


def ddp_step_time(profile: ModelProfile, cluster: Cluster, batch: int, *, precision: str = "fp32",
                  bucketing: Bucketing = DDP, overlap: float = 1.0, overhead_s: float = 0.0,
                  efficiency: float = DEFAULT_EFFICIENCY,
                  first_call_credit_s: Callable[[float, float], float] | None = None) -> StepBreakdown:
    """One data-parallel step of `batch` samples per device on `cluster` (see the module's docstring).

    `first_call_credit_s(bytes, idle_s)`, if given (DDP bucketing only): seconds the step's first
    all-reduce is shorter than the link's alpha-beta cost, given how long the link idled before it:
    the previous step's optimizer, this step's forward, and backward up to the first bucket (a
    lower bound: the per-step overhead is left out). Calibration uses it for a `tc tbf` cap whose
    token bucket refills during that idle time (calibrate.tbf_credit_s)."""
    if not 0 <= overlap <= 1 or overhead_s < 0:
        raise UserError(f"overlap must be in [0, 1] and overhead >= 0, got {overlap}, {overhead_s}")
    fwd, bwd, opt = compute_times(profile, cluster.device, batch, precision, efficiency)
    if cluster.world_size == 1:  # p = 1: no communication, no DDP overhead
        return StepBreakdown(fwd, bwd, opt, 0.0, 0.0, 0.0, 0.0, 0, cluster.algorithm, "-")
    costs = []

    def cost(size: float) -> float:
        costs.append(cluster_allreduce(size, cluster.gpus_per_node, cluster.nodes, cluster.intra,
                                       cluster.inter, cluster.nics_per_node, cluster.algorithm))
        return costs[-1].total_s

    end, saved = 0.0, 0.0
    if bucketing.policy == "ddp":
        for i, (size, ready) in enumerate(buckets(profile, bwd, bucketing)):
            call = cost(size)
            if i == 0 and first_call_credit_s is not None:
                saved = min(call, max(0.0, first_call_credit_s(size, opt + fwd + ready)))
                call -= saved
            end = max(end, ready) + call  # waits for its gradients and the previous bucket
    else:
        end = fusion_calls(gradient_arrivals(profile, bwd), bucketing, cost)
    comm = sum(c.total_s for c in costs) - saved
    timeline_exposed = max(0.0, end - bwd)
    # With overlap < 1 only that fraction of the communication inside backward is really hidden.
    exposed = timeline_exposed + (1 - overlap) * (comm - timeline_exposed)
    return StepBreakdown(fwd, bwd, opt, comm, sum(c.latency_s for c in costs), exposed, overhead_s,
                         len(costs), cluster.algorithm, costs[-1].bottleneck if costs else "-")


@dataclass(frozen=True, slots=True)
class PredictionRow:
    nodes: int
    gpus: int
    global_batch: int
    step_ms: float
    compute_ms: float
    comm_ms: float
    exposed_ms: float
    overhead_ms: float
    samples_per_s: float
    speedup: float
    efficiency: float
    time_to_train_s: float | None
    buckets: int
    limited_by: str

    def to_dict(self) -> dict:
        return asdict(self)


def predict(profile: ModelProfile, cluster: Cluster, nodes_list: list[int], batch: int, *,
            dataset_size: int | None = None, epochs: float = 1.0, **step_kw) -> list[PredictionRow]:
    """One row per node count: throughput, speedup and efficiency against one device, and the split."""
    if not nodes_list or any(not isinstance(n, int) or n < 1 for n in nodes_list):
        raise UserError(f"node counts must be whole numbers >= 1, got {nodes_list}")
    if dataset_size is not None and dataset_size <= 0 or epochs <= 0:
        raise UserError("dataset size and epochs must be positive")
    single = ddp_step_time(profile, cluster.with_nodes(1, 1), batch, **step_kw)
    base_rate = batch / single.step_s
    rows = []
    for n in nodes_list:
        s = ddp_step_time(profile, cluster.with_nodes(n), batch, **step_kw)
        p = n * cluster.gpus_per_node
        rate = p * batch / s.step_s
        rows.append(PredictionRow(
            nodes=n, gpus=p, global_batch=p * batch, step_ms=1e3 * s.step_s,
            compute_ms=1e3 * s.compute_s, comm_ms=1e3 * s.comm_s, exposed_ms=1e3 * s.exposed_s,
            overhead_ms=1e3 * s.overhead_s, samples_per_s=rate, speedup=rate / base_rate,
            efficiency=rate / base_rate / p,
            time_to_train_s=None if dataset_size is None else dataset_size * epochs / rate,
            buckets=s.buckets, limited_by=s.limited_by()))
    return rows
