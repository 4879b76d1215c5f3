"""The data-parallel step model: compute + what data parallelism adds to it.

    step = forward + backward + optimizer            (compute at the per-device batch)
         + co-location                               (N workers of a node slowing each other)
         + contention                                (backward slowed while collectives run)
         + exposed communication                     (the all-reduce tail after backward)
         + synchronisation                           (the slowest of N workers, not the median)
         + framework + overhead                      (fixed per-step costs of the DDP wrapper)

Compute is measured on one device (`ModelProfile`: a step time, or a sweep of batches interpolated
in log batch) or estimated as FLOPs / (peak x efficiency) plus a kernel-launch floor. Communication
follows PyTorch DDP (S. Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel
Training", PVLDB 13(12), 2020, §3.2.3-3.2.4 and §4.2): gradients packed into buckets in reverse
parameter order (buckets.py), a bucket's all-reduce starting when its last gradient is ready and
the previous one is done (one communication stream). The terms beyond that timeline and their
sources are in terms.py and docs/prediction.md. `overlap` (0..1, fitted to measured runs) scales how
much of the communication inside backward is really hidden: 1 = the timeline, 0 = none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from nnscale.errors import UserError
from nnscale.predict import terms as T
from nnscale.predict.buckets import (  # noqa: F401 (re-exported)
    DDP,
    DEFAULT_BUCKET_MB,
    DEFAULT_FIRST_BUCKET_MB,
    HOROVOD,
    MIB,
    UNIFORM_LAYERS,
    Bucketing,
    buckets,
    fusion_calls,
    gradient_arrivals,
)
from nnscale.predict.catalogue import Device, Link
from nnscale.predict.comm import ALGORITHMS, cluster_allreduce
from nnscale.predict.profile import Layer, ModelProfile  # noqa: F401 (re-exported)

# SGD with momentum in fp32 (also under AMP, whose master weights, grads and state are fp32):
# read param, grad, momentum; write param, momentum = 5 x 4 bytes per parameter, memory-bound.
OPTIMIZER_BYTES_PER_PARAM = 20
# Fraction of peak a CNN's training reaches when nothing better is known: tf_cnn_benchmarks' P100
# ResNet-50 runs 219 img/s (TensorFlow's published benchmarks, DGX-1, batch 64) x 22.9 GFLOP per
# image (nnscale stats resnet50-v1) = 5.0 TFLOP/s of 10.6 = 47 %; rounded down. An fp32 figure:
# override it with --efficiency or a measured run.
DEFAULT_EFFICIENCY = 0.45
COMPUTE_BOUND = 0.05  # a point whose losses are under 5 % of its step "scales"


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
    contention_s: float = 0.0  # backward's slowdown while collectives ran
    sync_s: float = 0.0  # expected max of N workers' steps minus the median
    framework_s: float = 0.0  # the wrapper's per-layer hooks
    # The compute the node's co-located workers add to one another's (profile.co_located_factor):
    # forward_s, backward_s and optimizer_s stay a lone device's.
    colocation_s: float = 0.0

    @property
    def compute_s(self) -> float:
        return self.forward_s + self.backward_s + self.optimizer_s

    @property
    def step_s(self) -> float:
        return (self.compute_s + self.colocation_s + self.contention_s + self.exposed_s + self.sync_s
                + self.framework_s + self.overhead_s)

    def limited_by(self) -> str:
        """What keeps this point from linear scaling: compute (nothing), bandwidth, latency, or the
        largest of the other terms."""
        lost = self.step_s - self.compute_s
        if lost <= COMPUTE_BOUND * self.step_s:
            return "compute"
        share = self.comm_latency_s / self.comm_s if self.comm_s else 0.0
        terms = {f"bandwidth ({self.bottleneck})": self.exposed_s * (1 - share),
                 "latency": self.exposed_s * share, "overhead": self.overhead_s + self.framework_s,
                 "contention": self.contention_s, "synchronisation": self.sync_s,
                 "co-location": self.colocation_s}
        return max(terms, key=terms.get)


def compute_times(profile: ModelProfile, device: Device, batch: int, precision: str = "fp32",
                  efficiency: float = DEFAULT_EFFICIENCY, launch_s: float = 0.0) -> tuple[float, float, float]:
    """(forward, backward, optimizer) seconds of one step of `batch` samples on one device.
    `launch_s` (seconds per kernel) adds the kernel-launch floor (terms.launch_cost_s) to an
    estimated compute: what makes a device's efficiency fall at small per-device batches."""
    if batch < 1:
        raise UserError(f"batch per GPU must be >= 1, got {batch}")
    fwd_share = profile.forward_flops / profile.training_flops
    if profile.step_time_s is not None:
        # Measured: from the sweep at this batch, else scaled linearly from the measured batch.
        total = profile.measured_step_s(batch)
        opt = min(profile.optimizer_s or 0.0, total)
        fb = total - opt
    else:
        if not 0 < efficiency <= 1:
            raise UserError(f"efficiency must be in (0, 1], got {efficiency}")
        fb = profile.training_flops * batch / (device.peak(precision) * efficiency)
        fb += T.launch_cost_s(len(profile.layers) or UNIFORM_LAYERS, launch_s)
        opt = profile.params * OPTIMIZER_BYTES_PER_PARAM / device.memory_bandwidth
    return fb * fwd_share, fb * (1 - fwd_share), opt


def ddp_step_time(profile: ModelProfile, cluster: Cluster, batch: int, *, precision: str = "fp32",
                  bucketing: Bucketing = DDP, overlap: float = 1.0, overhead_s: float = 0.0,
                  efficiency: float = DEFAULT_EFFICIENCY, terms: T.Terms = T.NONE,
                  first_call_credit_s: Callable[[float, float], float] | None = None) -> StepBreakdown:
    """One data-parallel step of `batch` samples per device on `cluster` (see the module's docstring).

    `terms`: contention, jitter and framework cost (terms.NONE, the default, is the plain timeline
    the calibration of measured runs fits; terms.CATALOGUE the documented defaults).
    `first_call_credit_s(bytes, idle_s)`, if given (DDP bucketing only): seconds the step's first
    all-reduce is shorter than the link's alpha-beta cost, given how long the link idled before it:
    the previous step's optimizer, this step's forward, and backward up to the first bucket (a
    lower bound: the per-step overhead is left out). Calibration uses it for a `tc tbf` cap whose
    token bucket refills during that idle time (calibrate.tbf_credit_s)."""
    if not 0 <= overlap <= 1 or overhead_s < 0:
        raise UserError(f"overlap must be in [0, 1] and overhead >= 0, got {overlap}, {overhead_s}")
    fwd, bwd, opt = compute_times(profile, cluster.device, batch, precision, efficiency,
                                  terms.launch_s_per_kernel)
    if cluster.world_size == 1:  # p = 1: no communication, no DDP overhead
        return StepBreakdown(fwd, bwd, opt, 0.0, 0.0, 0.0, 0.0, 0, cluster.algorithm, "-")
    # Co-located workers compute slower (a measured loaded/lone ratio): the whole timeline runs on
    # the slowed compute, buckets become ready later; the lone compute stays the breakdown's.
    slow = profile.co_located_factor(cluster.gpus_per_node)
    lone = fwd + bwd + opt
    fwd_x, bwd_x, opt_x = fwd * slow, bwd * slow, opt * slow
    costs = []

    def cost(size: float) -> float:
        costs.append(cluster_allreduce(size, cluster.gpus_per_node, cluster.nodes, cluster.intra,
                                       cluster.inter, cluster.nics_per_node, cluster.algorithm))
        return costs[-1].total_s

    line = T.Timeline(terms.contention)
    end, saved = 0.0, 0.0
    if bucketing.policy == "ddp":
        for i, (size, ready) in enumerate(buckets(profile, bwd_x, bucketing)):
            call = cost(size)
            if i == 0 and first_call_credit_s is not None:
                saved = min(call, max(0.0, first_call_credit_s(size, opt_x + fwd_x + ready)))
                call -= saved
            # waits for its gradients and the previous bucket
            end = line.add(max(end, line.wall(ready)), call)
    else:
        end = fusion_calls(gradient_arrivals(profile, bwd_x), bucketing, cost, line.wall, line.add)
    bwd_end = line.wall(bwd_x)
    comm = sum(c.total_s for c in costs) - saved
    timeline_exposed = max(0.0, end - bwd_end)
    # With overlap < 1 only that fraction of the communication inside backward is really hidden.
    exposed = timeline_exposed + (1 - overlap) * (comm - timeline_exposed)
    compute = fwd_x + bwd_x + opt_x
    samples = ()
    if profile.samples_s:  # the measured spread, scaled to this step's compute
        mid = sorted(profile.samples_s)[len(profile.samples_s) // 2]
        samples = tuple(x * compute / mid for x in profile.samples_s)
    sync = T.sync_cost_s(compute, cluster.world_size, terms.jitter_cv, samples)
    return StepBreakdown(fwd, bwd, opt, comm, sum(c.latency_s for c in costs), exposed, overhead_s,
                         # the algorithm NCCL's cost model picks for the largest call, under auto
                         len(costs), max(costs, key=lambda c: c.total_s).algorithm if costs else cluster.algorithm,
                         costs[-1].bottleneck if costs else "-",
                         contention_s=bwd_end - bwd_x, sync_s=sync,
                         framework_s=terms.framework_s_per_layer * profile.gradient_layers,
                         colocation_s=compute - lone)


@dataclass(frozen=True, slots=True)
class PredictionRow:
    nodes: int
    gpus: int
    global_batch: int
    batch_per_gpu: int
    compute_efficiency: float  # per-sample compute at the baseline's batch / at this batch
    step_ms: float
    compute_ms: float
    comm_ms: float
    exposed_ms: float
    colocation_ms: float  # the co-located workers' compute slowdown (StepBreakdown.colocation_s)
    contention_ms: float
    sync_ms: float
    framework_ms: float
    overhead_ms: float
    samples_per_s: float
    speedup: float
    efficiency: float
    # points of efficiency each term costs (they add up to 100 - 100 x efficiency)
    loss_batch: float
    loss_exposed: float
    loss_colocation: float
    loss_contention: float
    loss_sync: float
    loss_overhead: float
    time_to_train_s: float | None
    time_to_train_stat_s: float | None  # with statistical efficiency (stateff.py)
    epochs_needed: float | None
    buckets: int
    algorithm: str  # the all-reduce algorithm of the step's largest call (auto: ring or tree)
    bottleneck: str  # the link that sets its bandwidth term (the node's NICs, shared by its GPUs)
    limited_by: str

    def to_dict(self) -> dict:
        return asdict(self)


def per_gpu_batch(global_batch: int, gpus: int) -> int:
    """Strong scaling: the per-device share of a fixed global batch (UserError unless it divides)."""
    if global_batch < gpus or global_batch % gpus:
        raise UserError(f"--global-batch {global_batch} must be a multiple of the number of GPUs and "
                        f"at least as large ({gpus} GPUs here): e.g. {max(1, global_batch // gpus) * gpus}")
    return global_batch // gpus


def predict(profile: ModelProfile, cluster: Cluster, nodes_list: list[int], batch: int, *,
            global_batch: int | None = None, dataset_size: int | None = None, epochs: float = 1.0,
            epochs_at=None, **step_kw) -> list[PredictionRow]:
    """One row per node count: throughput, speedup and efficiency against one device, the split.

    Weak scaling (default): `batch` per device. Strong scaling: `global_batch` split over the
    devices, against one device at the global batch (or at the largest batch the run measured).
    `epochs_at(global_batch)` -> epochs to the target with statistical efficiency (stateff.py)."""
    if not nodes_list or any(not isinstance(n, int) or n < 1 for n in nodes_list):
        raise UserError(f"node counts must be whole numbers >= 1, got {nodes_list}")
    if dataset_size is not None and dataset_size <= 0 or epochs <= 0:
        raise UserError("dataset size and epochs must be positive")
    base_batch = batch
    if global_batch is not None:
        for n in nodes_list:
            per_gpu_batch(global_batch, n * cluster.gpus_per_node)
        base_batch = global_batch
        if profile.step_time_s is not None and profile.sweep:
            base_batch = min(global_batch, max(b for b, _ in profile.sweep))
    single = ddp_step_time(profile, cluster.with_nodes(1, 1), base_batch, **step_kw)
    per_sample = single.step_s / base_batch  # the baseline's seconds per sample
    rows = []
    for n in nodes_list:
        p = n * cluster.gpus_per_node
        b = batch if global_batch is None else global_batch // p
        s = ddp_step_time(profile, cluster.with_nodes(n), b, **step_kw)
        ideal = b * per_sample
        rate = p * b / s.step_s

        def pts(seconds: float) -> float:
            return 100 * seconds / s.step_s

        g = p * b
        need = epochs_at(g) if epochs_at and dataset_size else None
        rows.append(PredictionRow(
            nodes=n, gpus=p, global_batch=g, batch_per_gpu=b, compute_efficiency=ideal / s.compute_s,
            step_ms=1e3 * s.step_s, compute_ms=1e3 * s.compute_s, comm_ms=1e3 * s.comm_s,
            exposed_ms=1e3 * s.exposed_s, colocation_ms=1e3 * s.colocation_s,
            contention_ms=1e3 * s.contention_s, sync_ms=1e3 * s.sync_s,
            framework_ms=1e3 * s.framework_s, overhead_ms=1e3 * s.overhead_s, samples_per_s=rate,
            speedup=rate * per_sample, efficiency=ideal / s.step_s,
            loss_batch=pts(s.compute_s - ideal), loss_exposed=pts(s.exposed_s),
            loss_colocation=pts(s.colocation_s),
            loss_contention=pts(s.contention_s), loss_sync=pts(s.sync_s),
            loss_overhead=pts(s.framework_s + s.overhead_s),
            time_to_train_s=None if dataset_size is None else dataset_size * epochs / rate,
            time_to_train_stat_s=None if need is None else dataset_size * need / rate,
            epochs_needed=need, buckets=s.buckets, algorithm=s.algorithm, bottleneck=s.bottleneck,
            limited_by=s.limited_by()))
    return rows
