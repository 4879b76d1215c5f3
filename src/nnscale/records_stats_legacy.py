"""The flat statistics dicts nnscale stored before the typed record (records_stats.py), read into
its blocks: the migration of one stored row.

Until issue 14 `Measurement.stats` was a free-form dict and one value travelled under several
names: sweep points wrote `step_time_ms`, `step_time_ms_median` and `step_time_ms_p50`
(`latency_ms_p50` for inference), `samples_per_s` and `samples_per_s_median`
(measure/point.py, measure/processes.py); DDP/FSDP and all-reduce points `median_ms`, `p50_ms`, `n`
(stats.Summary.to_dict) and all-reduce `time_ms` (distributed/scaling.py, distributed/allreduce.py).
ALIASES lists each field's names; the names of one field always held the same number (the
fixture test tests/store/test_store_v1_fixture.py checks it on a stored run), and a dict in which
they disagree is refused rather than one of them dropped.
"""

from __future__ import annotations

# field "block.name" <- every flat key it was stored under, the preferred first.
ALIASES: dict[str, tuple[str, ...]] = {
    "timing.median_ms": ("step_time_ms_median", "step_time_ms", "median_ms", "time_ms"),
    "timing.mean_ms": ("step_time_ms_mean", "mean_ms"),
    "timing.stdev_ms": ("step_time_ms_stdev", "stdev_ms"),
    "timing.min_ms": ("step_time_ms_min", "min_ms"),
    "timing.max_ms": ("step_time_ms_max", "max_ms"),
    "timing.median_ci_low_ms": ("step_time_ms_median_ci_low", "median_ci_low_ms"),
    "timing.median_ci_high_ms": ("step_time_ms_median_ci_high", "median_ci_high_ms"),
    "timing.mean_ci_low_ms": ("step_time_ms_ci_low", "ci_low_ms"),
    "timing.mean_ci_high_ms": ("step_time_ms_ci_high", "ci_high_ms"),
    "timing.p50_ms": ("step_time_ms_p50", "latency_ms_p50", "p50_ms"),
    "timing.p95_ms": ("step_time_ms_p95", "latency_ms_p95", "p95_ms"),
    "timing.p99_ms": ("step_time_ms_p99", "latency_ms_p99", "p99_ms"),
    "timing.iterations": ("iterations", "n"),
    "throughput.samples_per_s": ("samples_per_s_median", "samples_per_s"),
    "processes.within_sd_ms": ("step_time_ms_within_sd",),
    "processes.between_sd_ms": ("step_time_ms_between_sd",),
    "processes.bootstrap_se_ms": ("step_time_ms_bootstrap_se",),
    "host.torch_version": ("torch_version", "torch"),
    "launch.bandwidth_cap_bit_per_s": ("bandwidth_cap_bit_per_s", "tc_rate_bit_per_s"),
}
# Old keys whose value changes unit or shape on the way in: key -> (its new key, the conversion).
_CONVERTED = {
    "bandwidth_cap_bytes_per_s": ("bandwidth_cap_bit_per_s", lambda v: None if v is None else 8 * v),
    "bucket_cap_mb": ("ddp_options", lambda v: {"bucket_mb": v}),
}

# Keys stored under the field's own name, by block.
_SAME_NAME = {
    "timing": ("rel_ci", "target_rel_ci", "confidence", "outliers", "stable", "first_step_ms",
               "compile_s", "warmup_iters", "warmup_s", "warmup_steady", "measure_s", "budget_s",
               "point_wall_s"),
    "throughput": ("samples_per_s_ci_low", "samples_per_s_ci_high", "tokens_per_s",
                   "tokens_per_s_ci_low", "tokens_per_s_ci_high", "tokens_per_s_per_sequence",
                   "tokens_per_sample", "seq_len", "lm_phase"),
    "processes": ("processes", "process_medians_ms", "process_iterations", "between_share",
                  "rel_ci_within", "steal_share", "process_steal_share", "worker_start",
                  "process_started_at_s"),
    "compute": ("peak_memory_bytes", "flop_per_sample", "achieved_flop_per_s", "peak_flop_per_s",
                "mfu"),
    "host": ("threads", "device_name", "framework_version", "framework_mode", "data_layout",
             "keras_version", "keras_policy", "tf_intra_op_threads", "tf_inter_op_threads",
             "ort_providers", "ort_intra_op_threads", "ort_inter_op_threads", "onnx_exporter",
             "onnx_opset", "onnx_export_s", "xla_flags", "jax_platform"),
    "launch": ("backend", "nnodes", "nproc_per_node", "bandwidth_cap_bit_per_s", "bandwidth_cap_burst_bits",
               "slurm_job_id", "started_at_s"),
    "distributed": (
        "scaling", "strategy", "world_size", "batch_per_worker", "global_batch", "threads_per_worker",
        "worker", "samples_per_s_per_worker", "forward_ms", "backward_ms", "optimizer_ms",
        "comm_exposed_ms", "comm_total_ms", "comm_overlapped_ms", "breakdown_sum_ms",
        "breakdown_step_ms", "breakdown_iters", "breakdown_method", "breakdown_samples_keys",
        "breakdown_samples", "per_rank_step_ms", "per_rank_compute_ms", "per_rank_comm_exposed_ms",
        "per_rank_host", "per_rank_threads", "per_rank_cpus", "per_rank_peak_memory_bytes",
        "per_rank_model_state_bytes", "slowest_rank", "straggler_ratio", "param_bytes_per_rank",
        "grad_bytes_per_rank", "optimizer_state_bytes_per_rank", "memory_method", "ddp_options",
        "ddp_logging", "bytes_allreduced_per_step", "buckets", "all_gather_ms", "reduce_scatter_ms",
        "all_gathers", "reduce_scatters", "bytes_all_gathered_per_step",
        "bytes_reduce_scattered_per_step", "fsdp_layout", "dataset_size", "epochs",
        "time_to_train_min", "trace_file", "step_timeline", "speedup_vs_1_worker", "paired_speedups",
        "efficiency_vs_1_worker", "speedup_vs_1_node",
        "efficiency_vs_1_node", "baseline_1_worker", "baseline_1_node"),
    "allreduce": ("size_bytes", "algbw_gb_per_s", "busbw_gb_per_s", "per_rank_time_ms",
                  "bandwidth_definition"),
}
for _block, _names in _SAME_NAME.items():
    for _name in _names:
        ALIASES.setdefault(f"{_block}.{_name}", (_name,))

FIELD_OF: dict[str, str] = {key: target for target, keys in ALIASES.items() for key in keys}


def blocks_from_flat(d: dict) -> dict[str, dict]:
    """{block: {field: value}} from a flat dict of any release; ValueError for a key no field
    holds or for two names of one field holding different values."""
    d = dict(d)
    for old, (new, convert) in _CONVERTED.items():
        if old in d:
            value = convert(d.pop(old))
            if d.get(new) is None:
                d[new] = value
    unknown = sorted(k for k in d if k not in FIELD_OF)
    if unknown:
        raise ValueError(f"unknown statistic {unknown[0]!r} in a stored point")
    blocks: dict[str, dict] = {}
    for target, keys in ALIASES.items():
        present = [k for k in keys if k in d]
        if not present:
            continue
        values = [d[k] for k in present if d[k] is not None]
        if any(not _same(v, values[0]) for v in values[1:]):
            raise ValueError(f"stored statistics disagree: {', '.join(f'{k}={d[k]!r}' for k in present)}")
        block, name = target.split(".")
        blocks.setdefault(block, {})[name] = values[0] if values else None
    return blocks


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # both NaN
    return a == b
