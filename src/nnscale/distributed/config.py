"""What a scaling or all-reduce run is asked to do, checked at the edge (UserError, nothing started).

World sizes: `nproc` lists processes per node; with `nnodes` nodes a point has nnodes × nproc workers.
Weak scaling fixes the batch per worker; strong scaling fixes the global batch, which must then
divide evenly by every world size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace

from nnscale.distributed.metrics import DEFAULT_EPOCHS, IMAGENET_TRAIN_IMAGES, parse_sizes
from nnscale.distributed.netutil import Endpoint, parse_endpoint
from nnscale.errors import UserError
from nnscale.linkcap import rate_bit_per_s
from nnscale.measure.methodology import MIN_PROCESS_BUDGET_S, MeasurePolicy
from nnscale.measure.validate import check_seconds
from nnscale.records import PRECISIONS

DEVICES = ("cpu", "cuda")
COMM_HOOKS = ("none", "fp16", "bf16")
BREAKDOWN_MODES = ("inline", "separate")
DEFAULT_TIMEOUT_S = 900.0  # one launch, start to result; a ResNet-152 point on 8 GPUs fits
# Fresh torchrun launches per world size, in interleaved rounds (scaling.py): one launch's interval
# misses the +-10 % that separates fresh processes on a small VM (docs/methodology.md), as a sweep
# point's single process does; 3 is the sweeps' own default (MeasurePolicy.processes).
DEFAULT_LAUNCHES = 3
ALLREDUCE_DTYPES = ("fp32", "bf16", "fp16")
# The data-parallel strategies `scale` measures (nnscale.distributed.train_state.STRATEGIES; this
# module does not import torch), and the one engine that has them.
STRATEGIES = ("ddp", "fsdp")
STRATEGY_NAMES = {"ddp": "DDP (DistributedDataParallel)", "fsdp": "FSDP (fully_shard)"}
SCALE_FRAMEWORK = "torch"


def parse_nproc(text: str) -> tuple[int, ...]:
    """'1,2,4,8' -> (1, 2, 4, 8); UserError unless positive integers."""
    try:
        values = tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        values = ()
    if not values or values[0] < 1:
        raise UserError(f"--nproc {text!r} is not a list of positive integers, e.g. 1,2,4,8")
    return values


def tbf_burst(rate: str, bucket_s: float = 1e-3) -> str:
    """A `tc tbf` bucket for RATE that can deliver it: `bucket_s` of tokens, at least 32 kbit.

    tc-tbf(8): the bucket must hold at least the tokens that arrive in one timer tick, or the
    qdisc cannot reach its rate. With a fixed 32 kbit bucket a 1gbit cap delivered about
    370 Mbit/s here (docs/benchmarks.md), so the recorded cap was wrong. 1 ms at 1 Gbit/s is
    1e9 * 1e-3 = 1e6 bit = 1000 kbit.
    """
    kbit = rate_bit_per_s(rate) * bucket_s / 1e3
    return f"{max(32, round(kbit))}kbit"



def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_workers(nproc: int, device: str, option: str = "--nproc") -> list[str]:
    """Refuse more workers than GPUs (UserError); on CPU, warnings when workers outnumber cores."""
    if device == "cuda":
        gpus = cuda_devices()
        if gpus == 0:
            raise UserError("--device cuda: no CUDA GPU is visible (torch.cuda.is_available() is "
                            "False); use --device cpu")
        if nproc > gpus:
            raise UserError(f"{option} {nproc}: this node has {gpus} GPU(s) visible; one worker "
                            f"per GPU, so at most {gpus}")
        return []
    if nproc > len(usable_cpus()):
        return [f"{option} {nproc} is more than this node's {len(usable_cpus())} usable cores: workers "
                "will share cores, and each one's time includes the others' slices"]
    return []


def check_thread_fit(threads: int | None, nproc: int, device: str) -> None:
    """An explicit --threads-per-worker that, times the workers per node, needs more cores than this
    node has usable is refused (UserError): the workers could not each have their own cores, so
    their times would include each other's slices. Without it, the split is automatic."""
    cpus = usable_cpus()
    if device != "cpu" or threads is None or threads * nproc <= len(cpus):
        return
    most = max(1, len(cpus) // nproc)
    raise UserError(f"--threads-per-worker {threads} x {nproc} workers = {threads * nproc} threads, "
                    f"more than this node's {len(cpus)} usable cores: give at most {most} thread(s) "
                    "per worker at that many workers, or fewer workers")


@dataclass(frozen=True, slots=True)
class Launching:
    """Where and how the workers of every point start (shared by `scale` and `allreduce`)."""

    nproc: tuple[int, ...]
    device: str = "cpu"
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: Endpoint | None = None  # None: this machine, a free port (single node only)
    local_addr: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    threads_per_worker: int | None = None  # CPU: None splits the cores evenly
    # Recorded only (nnscale does not set it): the `tc tbf` cap on the link, parsed at the CLI edge
    # (nnscale.linkcap) into its rate and its bucket (`burst`).
    bandwidth_cap_bit_per_s: float | None = None
    bandwidth_cap_burst_bytes: float | None = None

    def __post_init__(self) -> None:
        if self.bandwidth_cap_burst_bytes is not None and self.bandwidth_cap_bit_per_s is None:
            raise UserError("--bandwidth-cap-burst needs --bandwidth-cap RATE: a bucket is the "
                            "burst of a rate cap")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise UserError(f"--threads-per-worker {self.threads_per_worker}: expected >= 1")
        if self.device not in DEVICES:
            raise UserError(f"--device {self.device!r}: expected one of {', '.join(DEVICES)}")
        if self.nnodes < 1:
            raise UserError(f"--nnodes {self.nnodes}: expected a positive integer")
        if not 0 <= self.node_rank < self.nnodes:
            raise UserError(f"--node-rank {self.node_rank}: expected 0 to {self.nnodes - 1}")
        if self.nnodes > 1 and self.rdzv_endpoint is None:
            raise UserError(f"--nnodes {self.nnodes} needs --rdzv-endpoint HOST:PORT, the same on "
                            "every node (e.g. the first node's address)")
        check_seconds(self.timeout_s, "--timeout")  # finite and bounded: c10d's timedelta overflows
        check_thread_fit(self.threads_per_worker, max(self.nproc), self.device)

    def world_sizes(self) -> list[int]:
        return [self.nnodes * p for p in self.nproc]


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    model: str
    launching: Launching
    batch_per_worker: int | None = None  # weak scaling
    global_batch: int | None = None  # strong scaling
    precision: str = "fp32"
    bucket_mb: float = 25.0  # DDP's default bucket_cap_mb
    grad_as_bucket_view: bool = False
    static_graph: bool = False
    comm_hook: str = "none"
    channels_last: bool = False
    input_shape: tuple[int, ...] | None = None  # None: the model's own
    policy: MeasurePolicy = MeasurePolicy()
    breakdown: str = "inline"  # "inline": the measured steps carry the marks; "separate" pass
    breakdown_iters: int = 20  # iterations of the separate pass
    trace: bool = True  # one step under torch.profiler after measuring, its trace beside the store
    dataset_size: int = IMAGENET_TRAIN_IMAGES
    epochs: int = DEFAULT_EPOCHS
    strategy: str = "ddp"
    framework: str = SCALE_FRAMEWORK
    launches: int = DEFAULT_LAUNCHES  # per world size, interleaved rounds; the budget is split
    # Also measure, for every world size N > 1, the one-worker step as N independent copies at once
    # on the workers' cores (records.Workload.concurrent_copies): the compute of N co-located
    # workers without their communication, which a prediction of N workers per node starts from.
    loaded_reference: bool = False

    def __post_init__(self) -> None:
        self._check_strategy()
        if self.loaded_reference and (self.strategy != "ddp" or self.launching.nnodes > 1):
            raise UserError("--loaded-reference measures the workers of one node (DDP): run it "
                            "with --nnodes 1 and --strategy ddp")
        check_launches(self.launches, self.policy.budget_s, "world size")
        if (self.batch_per_worker is None) == (self.global_batch is None):
            raise UserError("give exactly one of --batch-per-worker B (weak scaling) and "
                            "--global-batch G (strong scaling)")
        for name in ("batch_per_worker", "global_batch", "dataset_size", "epochs", "breakdown_iters"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} {value}: expected a positive integer")
        if self.global_batch is not None:
            bad = [w for w in self.launching.world_sizes() if self.global_batch % w]
            if bad:
                raise UserError(f"--global-batch {self.global_batch} does not divide evenly by world "
                                f"size(s) {', '.join(map(str, bad))}; pick a multiple of each")
        if self.precision not in PRECISIONS:
            raise UserError(f"--precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.precision == "tf32" and self.launching.device != "cuda":
            raise UserError("--precision tf32 is a CUDA tensor-core mode; on CPU use fp32 or bf16")
        if self.breakdown not in BREAKDOWN_MODES:
            raise UserError(f"--breakdown {self.breakdown!r}: expected one of "
                            f"{', '.join(BREAKDOWN_MODES)}")
        if self.comm_hook not in COMM_HOOKS:
            raise UserError(f"--comm-hook {self.comm_hook!r}: expected one of {', '.join(COMM_HOOKS)}")
        if not (math.isfinite(self.bucket_mb) and self.bucket_mb > 0):
            raise UserError(f"--bucket-mb {self.bucket_mb}: expected megabytes > 0, e.g. 25")

    @staticmethod
    def check_strategy(strategy: str, framework: str) -> None:
        """UserError for a strategy nnscale does not have, or a framework without it."""
        if strategy not in STRATEGIES:
            raise UserError(f"--strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
        if framework != SCALE_FRAMEWORK:
            raise UserError(f"--strategy {strategy} with --framework {framework}: {framework} has "
                            f"no {STRATEGY_NAMES[strategy]} in nnscale; `nnscale scale` runs "
                            "PyTorch's torch.distributed: --framework torch")

    def _check_strategy(self) -> None:
        self.check_strategy(self.strategy, self.framework)
        if self.strategy == "fsdp":
            ddp_only = [flag for flag, value, default in (
                ("--bucket-mb", self.bucket_mb, 25.0), ("--grad-as-bucket-view",
                 self.grad_as_bucket_view, False), ("--static-graph", self.static_graph, False),
                ("--comm-hook", self.comm_hook, "none"), ("--breakdown", self.breakdown, "inline"))
                if value != default]
            if ddp_only:
                raise UserError(f"{', '.join(ddp_only)}: DDP option(s), not FSDP's; drop them or "
                                "use --strategy ddp (FSDP's steps always carry the breakdown)")

    @property
    def scaling(self) -> str:
        return "weak" if self.batch_per_worker is not None else "strong"

    def batch_for(self, world_size: int) -> int:
        return self.batch_per_worker or self.global_batch // world_size

    @property
    def launch_policy(self) -> MeasurePolicy:
        return per_launch_policy(self.policy, self.launches)


# A second of compute before every call would leave a budget's few calls in it; a training step
# of the sizes this benchmark is for is well below.
MAX_COMPUTE_BEFORE_MS = 1000.0


@dataclass(frozen=True, slots=True)
class AllreduceConfig:
    """`policy.budget_s` is per size, split over the `launches` (interleaved rounds, as scale's)."""

    launching: Launching
    sizes: tuple[int, ...]
    dtype: str = "fp32"
    policy: MeasurePolicy = MeasurePolicy(budget_s=2.0, warmup_max_s=2.0, min_iters=10)
    launches: int = DEFAULT_LAUNCHES
    # Busy compute every rank runs before each timed call (untimed): 0 times calls back to back, as
    # nccl-tests does; a DDP step's compute before its bucket's call (the study's calibration).
    compute_before_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.dtype not in ALLREDUCE_DTYPES:
            raise UserError(f"--dtype {self.dtype!r}: expected one of {', '.join(ALLREDUCE_DTYPES)}")
        c = self.compute_before_ms
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 <= c <= MAX_COMPUTE_BEFORE_MS:
            raise UserError(f"--compute-before {c!r}: expected milliseconds from 0 (calls back to "
                            f"back) to {MAX_COMPUTE_BEFORE_MS:g}")
        check_launches(self.launches, self.policy.budget_s, "size")

    @property
    def launch_policy(self) -> MeasurePolicy:
        return per_launch_policy(self.policy, self.launches)


def check_launches(launches: int, budget_s: float, per: str) -> None:
    """UserError unless `launches` is an integer >= 1 and `budget_s` (per `per`) gives each of them
    the minimum a process needs."""
    if isinstance(launches, bool) or not isinstance(launches, int) or launches < 1:
        raise UserError(f"--launches {launches!r}: expected an integer >= 1 (launches per {per}; "
                        f"{DEFAULT_LAUNCHES} or more for an interval across launches)")
    if budget_s < MIN_PROCESS_BUDGET_S * launches * (1 - 1e-9):
        raise UserError(
            f"--budget {budget_s:g} s is too small for {launches} launches per {per}: each needs "
            f"at least {MIN_PROCESS_BUDGET_S:g} s, so the minimum is "
            f"{MIN_PROCESS_BUDGET_S * launches:g} s (or give fewer --launches)")


def per_launch_policy(policy: MeasurePolicy, launches: int) -> MeasurePolicy:
    """What one launch measures: `budget_s / launches` of measurement, as a sweep process gets
    `budget_s / processes` (measure/processes.process_spec). The CI target and min_iters stay the
    point's: each launch stops early once its own interval is tight, and a launch with fewer than
    min_iters iterations makes the point unstable (processes.combine)."""
    return replace(policy, budget_s=policy.budget_s / launches, processes=1, max_processes=1)


def sizes_option(text: str) -> tuple[int, ...]:
    try:
        return tuple(parse_sizes(text))
    except ValueError:
        raise UserError(f"--sizes {text!r}: expected LOW..HIGH (doubling, e.g. 1K..256M) or a list "
                        "(e.g. 1K,64K,1M); units K, M, G are powers of 1024") from None


def endpoint_option(text: str | None) -> Endpoint | None:
    return None if text is None else parse_endpoint(text)
