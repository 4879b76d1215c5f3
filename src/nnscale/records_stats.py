"""The typed statistics of a measured point: one name per value, units in the names, versioned.

Pure Python (no torch), beside `records.py`: `predict` and `report` read these fields.

A point's statistics are blocks. Every point has `timing`, `throughput`, `processes`, `compute`
and `host` (fields None when not measured: an OOM point has only None); a distributed point
(DDP/FSDP) adds `launch` and `distributed`, an all-reduce point `launch` and `allreduce`.
`Stats.to_dict` writes the versioned form {"version": STATS_VERSION, "timing": {...}, ...};
`Stats.from_dict` reads it, and also every flat dict that nnscale stored before this record
existed (`records_stats_legacy.py` names each old key's field) — that is how a stored row migrates.

Meaning of each field: docs/methodology.md ("The statistics record").
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# 1: the first typed form (issue 14). Bump it when a field changes meaning or is renamed, and
# teach records_stats_legacy.py the old form.
STATS_VERSION = 1

Num = float | None  # None: not measured, or undefined (the stdev of one sample)
Int = int | None


@dataclass(frozen=True, slots=True)
class Timing:
    """The step time, milliseconds, and how it was measured (measure/methodology.py)."""

    median_ms: Num = None  # the estimate (sweeps over k processes: the mean of their medians)
    mean_ms: Num = None
    stdev_ms: Num = None
    min_ms: Num = None
    max_ms: Num = None
    median_ci_low_ms: Num = None  # CI of the estimate (order statistics, or across processes)
    median_ci_high_ms: Num = None
    mean_ci_low_ms: Num = None  # Student-t CI of the mean, or across processes (the stopping rule)
    mean_ci_high_ms: Num = None
    p50_ms: Num = None
    p95_ms: Num = None
    p99_ms: Num = None
    rel_ci: Num = None  # CI half-width over the estimate, a fraction
    target_rel_ci: Num = None
    confidence: Num = None  # of every interval here, e.g. 0.95
    iterations: Int = None
    outliers: Int = None  # beyond median ± 3 MAD, counted, never dropped
    stable: bool | None = None  # a distributed point met its CI target
    first_step_ms: Num = None  # the first call (compilation, lazy init), not a sample
    compile_s: Num = None
    warmup_iters: Int = None
    warmup_s: Num = None
    warmup_steady: bool | None = None
    measure_s: Num = None
    budget_s: Num = None
    point_wall_s: Num = None  # the whole point in the parent, setup and workers included


@dataclass(frozen=True, slots=True)
class Throughput:
    """Rates per second, from the median step time (bounds from its CI; a decreasing map)."""

    samples_per_s: Num = None
    samples_per_s_ci_low: Num = None
    samples_per_s_ci_high: Num = None
    tokens_per_s: Num = None  # language models: samples/s x tokens_per_sample
    tokens_per_s_ci_low: Num = None
    tokens_per_s_ci_high: Num = None
    tokens_per_s_per_sequence: Num = None  # decode
    tokens_per_sample: Int = None
    seq_len: Int = None
    lm_phase: str | None = None  # "prefill", "decode" or "training"


@dataclass(frozen=True, slots=True)
class Processes:
    """The hierarchical interval over k fresh worker processes (measure/processes.py), and the
    hypervisor's steal share around them (/proc/stat)."""

    processes: Int = None
    process_medians_ms: tuple[float, ...] | None = None
    process_iterations: tuple[int, ...] | None = None
    within_sd_ms: Num = None
    between_sd_ms: Num = None
    between_share: Num = None  # of the variance
    bootstrap_se_ms: Num = None
    rel_ci_within: Num = None  # what one process alone would have claimed (median over processes)
    steal_share: Num = None  # the largest of the processes', a fraction of the CPUs
    process_steal_share: tuple[float | None, ...] | None = None
    # How the processes started: "fork" (from pre-imported interpreters, measure/forkserver.py),
    # "spawn" (a new interpreter each) or both, e.g. "fork,spawn" when images failed mid-point.
    worker_start: str | None = None
    # When each process started (Unix seconds, in process order): the machine's drift over a run
    # is read from these (a point's processes are spread over the study in rounds).
    process_started_at_s: tuple[float | None, ...] | None = None


@dataclass(frozen=True, slots=True)
class Compute:
    """Memory and model FLOPs (docs/statistics.md); MFU = achieved over the measured peak."""

    peak_memory_bytes: Int = None  # distributed: the rank that needs the most
    flop_per_sample: Int = None
    achieved_flop_per_s: Num = None
    peak_flop_per_s: Num = None
    mfu: Num = None  # a fraction, 0.42 = 42 %


@dataclass(frozen=True, slots=True)
class Host:
    """What ran the point: threads, device, framework (each backend's `Prepared.info`)."""

    threads: Int = None
    device_name: str | None = None
    framework_version: str | None = None
    framework_mode: str | None = None
    data_layout: str | None = None
    keras_version: str | None = None
    keras_policy: str | None = None
    tf_intra_op_threads: Int = None
    tf_inter_op_threads: Int = None
    ort_providers: str | None = None
    ort_intra_op_threads: Int = None
    ort_inter_op_threads: Int = None
    onnx_exporter: str | None = None
    onnx_opset: Int = None
    onnx_export_s: Num = None
    torch_version: str | None = None  # ONNX export, and each DDP/FSDP rank's torch
    xla_flags: str | None = None  # JAX
    jax_platform: str | None = None


@dataclass(frozen=True, slots=True)
class Launch:
    """How a multi-process point was launched (distributed/launch.py). The layout and link cap
    fields hold what rows stored before the workload had `nnodes` and `link_cap_*` said; new rows
    leave them empty (one name per value: the workload's)."""

    backend: str | None = None  # "gloo", "nccl"
    nnodes: Int = None
    nproc_per_node: Int = None
    bandwidth_cap_bit_per_s: Num = None
    bandwidth_cap_burst_bits: Num = None
    slurm_job_id: str | None = None
    # Unix time each of the point's launches started, in round order: scaling.py interleaves the
    # world sizes' launches (1, 2, 1, 2, ...), and these show it.
    started_at_s: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class Distributed:
    """A DDP/FSDP point (distributed/scaling.py): layout, breakdown, ranks, memory, time to train.
    `strategy`, `world_size`, `batch_per_worker`, `threads_per_worker` and `ddp_options` hold what
    older rows said; new rows leave them to the workload's fields."""

    scaling: str | None = None  # "weak" or "strong"
    strategy: str | None = None  # "ddp", "fsdp"
    world_size: Int = None
    batch_per_worker: Int = None
    global_batch: Int = None
    threads_per_worker: Int = None
    worker: str | None = None  # one worker in words (rank 0's reading)
    samples_per_s_per_worker: Num = None
    forward_ms: Num = None
    backward_ms: Num = None
    optimizer_ms: Num = None
    comm_exposed_ms: Num = None
    comm_total_ms: Num = None
    comm_overlapped_ms: Num = None
    breakdown_sum_ms: Num = None
    breakdown_step_ms: Num = None
    breakdown_iters: Int = None
    breakdown_method: str | None = None
    breakdown_samples_keys: tuple[str, ...] | None = None
    breakdown_samples: tuple[tuple[float, ...], ...] | None = None
    per_rank_step_ms: tuple[float, ...] | None = None
    per_rank_compute_ms: tuple[float, ...] | None = None
    per_rank_comm_exposed_ms: tuple[float | None, ...] | None = None
    per_rank_host: tuple[str, ...] | None = None
    per_rank_threads: tuple[int | None, ...] | None = None
    per_rank_cpus: tuple[Any, ...] | None = None
    per_rank_peak_memory_bytes: tuple[int | None, ...] | None = None
    per_rank_model_state_bytes: tuple[int, ...] | None = None
    slowest_rank: Int = None
    straggler_ratio: Num = None  # slowest rank's compute over the median rank's
    param_bytes_per_rank: Int = None
    grad_bytes_per_rank: Int = None
    optimizer_state_bytes_per_rank: Int = None
    memory_method: str | None = None
    ddp_options: dict | None = None  # DDP: bucket_mb, static_graph, ... as given
    ddp_logging: dict | None = None  # DDP's own log (buckets it built)
    bytes_allreduced_per_step: Num = None
    buckets: Num = None
    all_gather_ms: Num = None  # FSDP
    reduce_scatter_ms: Num = None
    all_gathers: Num = None
    reduce_scatters: Num = None
    bytes_all_gathered_per_step: Num = None
    bytes_reduce_scattered_per_step: Num = None
    fsdp_layout: dict | None = None
    dataset_size: Int = None
    epochs: Int = None
    time_to_train_min: Num = None
    trace_file: str | None = None  # Chrome trace JSON of one step
    step_timeline: dict | None = None
    speedup_vs_1_worker: Num = None
    # Round r's rate over the 1-worker point's round-r rate, one per round (the launches of one
    # round ran back to back, so they share the machine's drift); None where not interleaved.
    paired_speedups: tuple[float, ...] | None = None
    efficiency_vs_1_worker: Num = None
    baseline_1_worker: str | None = None
    speedup_vs_1_node: Num = None
    efficiency_vs_1_node: Num = None
    baseline_1_node: str | None = None


@dataclass(frozen=True, slots=True)
class Allreduce:
    """An all-reduce point (distributed/allreduce.py); bandwidths as nccl-tests define them."""

    size_bytes: Int = None
    algbw_gb_per_s: Num = None  # S / t, GB = 1e9 B
    busbw_gb_per_s: Num = None  # algbw x 2(n-1)/n
    per_rank_time_ms: tuple[float, ...] | None = None
    bandwidth_definition: str | None = None


BLOCKS = {"timing": Timing, "throughput": Throughput, "processes": Processes, "compute": Compute,
          "host": Host}
OPTIONAL_BLOCKS = {"launch": Launch, "distributed": Distributed, "allreduce": Allreduce}


@dataclass(frozen=True, slots=True)
class Stats:
    """All statistics of one point (module docstring)."""

    timing: Timing = Timing()
    throughput: Throughput = Throughput()
    processes: Processes = Processes()
    compute: Compute = Compute()
    host: Host = Host()
    launch: Launch | None = None
    distributed: Distributed | None = None
    allreduce: Allreduce | None = None

    def to_dict(self) -> dict:
        """The versioned form (JSON-ready; tuples as lists; None fields and empty blocks left
        out, except an optional block that is present: it says what kind of point this is)."""
        out: dict = {"version": STATS_VERSION}
        for name in (*BLOCKS, *OPTIONAL_BLOCKS):
            block = getattr(self, name)
            if block is None:
                continue
            values = {f.name: _plain(getattr(block, f.name)) for f in fields(block)
                      if getattr(block, f.name) is not None}
            if values or name in OPTIONAL_BLOCKS:
                out[name] = values
        return out

    def flat(self) -> dict:
        """{"block.field": value} of every field that has a value (a CSV row, `nnscale results`)."""
        return {f"{block}.{name}": value for block, values in self.to_dict().items()
                if block != "version" for name, value in values.items()}

    @classmethod
    def from_dict(cls, d: dict | None) -> Stats:
        """The versioned form, or a flat dict of any older release (records_stats_legacy.py).
        ValueError naming the key for a key no field holds, or a version newer than this one."""
        if not d:
            return cls()
        if "version" not in d:
            from nnscale.records_stats_legacy import blocks_from_flat

            return cls._build(blocks_from_flat(d))
        version = d["version"]
        if not isinstance(version, int) or version > STATS_VERSION:
            raise ValueError(f"statistics version {version!r}; this nnscale reads up to {STATS_VERSION}")
        return cls._build({k: v for k, v in d.items() if k != "version"})

    @classmethod
    def _build(cls, blocks: dict[str, dict]) -> Stats:
        kw = {}
        for name, values in blocks.items():
            kind = BLOCKS.get(name) or OPTIONAL_BLOCKS.get(name)
            if kind is None:
                raise ValueError(f"unknown statistics block {name!r}")
            known = {f.name for f in fields(kind)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ValueError(f"unknown statistic {name}.{unknown[0]}")
            kw[name] = kind(**{k: _frozen(v) for k, v in values.items()})
        return cls(**kw)


def frozen_block(kind, values: dict):
    """A block of `kind` from plain values (lists as tuples), as a writer has them."""
    return kind(**{k: _frozen(v) for k, v in values.items()})


def _frozen(v):
    """Lists as tuples (a frozen record is hashable only so far; dicts stay dicts)."""
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    return v


def _plain(v):
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v
