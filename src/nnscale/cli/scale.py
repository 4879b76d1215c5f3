"""`nnscale scale MODEL --nproc 1,2,4,8 [--strategy ddp|fsdp] …`: data-parallel throughput (DDP or
FSDP2) over world sizes, with per-rank peak memory."""

from __future__ import annotations

import json
import statistics
import sys

from nnscale.cli.launch_options import add_launch_options, launching_from_args
from nnscale.distributed.config import (BREAKDOWN_MODES, COMM_HOOKS, DEFAULT_LAUNCHES,
                                        DEFAULT_TIMEOUT_S, ScaleConfig)
from nnscale.distributed.launch_loop import Sink, WorldSizeFailed
from nnscale.distributed.metrics import DEFAULT_EPOCHS, IMAGENET_TRAIN_IMAGES
from nnscale.distributed.scaling import run_scale
from nnscale.format import binary_bytes, render
from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.validate import check_seconds
from nnscale.netstats import parse_input_size
from nnscale.records import MEASURED_STATUSES, PRECISIONS
from nnscale.zoo import model_info

# Shared with `nnscale allreduce`, whose points are launched the same way.
LAUNCHES_OPTION = ("--launches", dict(
    type=int, default=DEFAULT_LAUNCHES, metavar="K",
    help=f"fresh torchrun launches per world size, in interleaved rounds (1, 2, 1, 2, ...); each "
         f"point's interval spans them (default {DEFAULT_LAUNCHES}; 1: one launch, its own interval)"))

# Options of the measured workload, shared with `nnscale slurm`, which passes them on.
WORKLOAD_OPTIONS = (
    ("--strategy", dict(default="ddp", metavar="ddp|fsdp",
                        help="ddp: DistributedDataParallel (default); fsdp: FSDP2 fully_shard, "
                             "parameters, gradients and optimizer state sharded over the ranks")),
    ("--framework", dict(default="torch", help="torch (the only one with DDP and FSDP here)")),
    ("--batch-per-worker", dict(type=int, metavar="B", help="weak scaling: B samples per worker")),
    ("--global-batch", dict(type=int, metavar="G", help="strong scaling: G samples split over workers")),
    ("--precision", dict(choices=PRECISIONS, default="fp32")),
    ("--channels-last", dict(action="store_true", help="NHWC memory format")),
    ("--input-size", dict(help="CxHxW; default: the model's own")),
    ("--seq-len", dict(type=int, metavar="S", help="language models: tokens per sequence "
                                                   "(default: the model's own)")),
    ("--bucket-mb", dict(type=float, default=25.0, help="DDP bucket_cap_mb (default 25)")),
    ("--grad-as-bucket-view", dict(action="store_true", help="DDP gradient_as_bucket_view")),
    ("--static-graph", dict(action="store_true", help="DDP static_graph")),
    ("--comm-hook", dict(choices=COMM_HOOKS, default="none", help="gradient compression hook")),
    ("--timeout", dict(type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                       help=f"seconds one launch may take (default {DEFAULT_TIMEOUT_S:g})")),
    ("--budget", dict(type=float, default=MeasurePolicy().budget_s, metavar="S",
                      help="measurement seconds per point, split over its launches")),
    LAUNCHES_OPTION,
    ("--target-rel-ci", dict(type=float, default=MeasurePolicy().target_rel_ci)),
    ("--breakdown", dict(choices=BREAKDOWN_MODES, default="inline",
                         help="inline: the measured steps carry the breakdown marks (a Python comm "
                              "hook); separate: plain DDP measured, then an instrumented pass")),
    ("--breakdown-iters", dict(type=int, default=20, help="iterations of the separate pass")),
    ("--dataset-size", dict(type=int, default=IMAGENET_TRAIN_IMAGES,
                            help="samples per epoch for the time-to-train projection (ImageNet)")),
    ("--epochs", dict(type=int, default=DEFAULT_EPOCHS)),
)


def add_workload_options(p) -> None:
    for flag, kw in WORKLOAD_OPTIONS:
        p.add_argument(flag, **kw)


def workload_argv(args) -> list[str]:
    """The workload options as given, for a command line that runs `nnscale scale` elsewhere."""
    out = []
    for flag, kw in WORKLOAD_OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        if kw.get("action") == "store_true":
            out += [flag] if value else []
        elif value is not None and value != kw.get("default"):
            out += [flag, str(value)]
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("scale", help="data-parallel (DDP or FSDP) throughput over workers and nodes")
    p.add_argument("model", help="zoo name, torchvision:NAME or timm:NAME")
    add_launch_options(p)
    add_workload_options(p)
    p.add_argument("--no-trace", dest="trace", action="store_false",
                   help="do not record one step per point with torch.profiler (default: recorded, "
                        "a Chrome trace beside the store)")
    p.add_argument("--loaded-reference", action="store_true",
                   help="also measure, for each world size N > 1, the one-worker step as N "
                        "independent copies at once on the workers' cores (no communication): "
                        "the compute of N co-located workers, which `nnscale predict measured:RUN` "
                        "then uses for N workers per node (single node, DDP)")
    p.add_argument("--db", help="results store (default sqlite:///nnscale.db)")
    p.add_argument("--run", help="run name; an existing run is resumed (single node)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handle=handle)


def config_from_args(args) -> ScaleConfig:
    ScaleConfig.check_strategy(args.strategy, args.framework)  # before the model is looked up
    check_seconds(args.timeout, "--timeout")
    shape = None
    if args.seq_len is not None:
        from nnscale.netstats.lm import check_seq_len

        check_seq_len(args.model, args.seq_len)  # UserError for a non-LM or S out of range
        shape = (args.seq_len,)
    elif args.input_size:
        shape = parse_input_size(args.input_size, model_info(args.model).input_shape)
    else:
        model_info(args.model)  # an unknown model is a UserError before anything starts
    launching = launching_from_args(args, args.timeout)
    policy = MeasurePolicy(budget_s=args.budget, target_rel_ci=args.target_rel_ci,
                           warmup_max_s=min(MeasurePolicy().warmup_max_s, args.budget))
    return ScaleConfig(args.model, launching, batch_per_worker=args.batch_per_worker,
                       global_batch=args.global_batch, precision=args.precision,
                       bucket_mb=args.bucket_mb, grad_as_bucket_view=args.grad_as_bucket_view,
                       static_graph=args.static_graph, comm_hook=args.comm_hook,
                       channels_last=args.channels_last, input_shape=shape, policy=policy,
                       breakdown=args.breakdown, breakdown_iters=args.breakdown_iters,
                       dataset_size=args.dataset_size,
                       epochs=args.epochs, trace=getattr(args, "trace", True), strategy=args.strategy,
                       framework=args.framework,
                       launches=getattr(args, "launches", DEFAULT_LAUNCHES),
                       loaded_reference=getattr(args, "loaded_reference", False))


def open_sink(args, node_rank: int, on_point=None) -> Sink:
    warn = lambda msg: print(f"nnscale: warning: {msg}", file=sys.stderr)  # noqa: E731
    if node_rank != 0:  # node rank 0 stores; the others only take part
        return Sink(on_point=on_point, on_warning=warn)
    from nnscale.store import capture_environment, open_store
    from nnscale.store.url import redact_command

    store = open_store(args.db)
    command = redact_command(["nnscale", *sys.argv[1:]])
    info = store.open_run(args.run, command, capture_environment, resume=True)
    return Sink(store, info.id, info.name, on_point, warn)


def _f(v, fmt="{:.3g}"):
    return "" if v is None else fmt.format(v)


def comm_bytes(d) -> float:
    """Bytes a rank's collectives carried per step (`d`: the point's Distributed block): DDP's
    all-reduced gradients, or FSDP's all-gathered parameters plus reduce-scattered gradients."""
    if d.bytes_allreduced_per_step is not None:
        return d.bytes_allreduced_per_step
    return (d.bytes_all_gathered_per_step or 0.0) + (d.bytes_reduce_scattered_per_step or 0.0)


def table_rows(points) -> list[dict]:
    rows = []
    for p in points:
        w = p.workload
        if p.status not in MEASURED_STATUSES:
            rows.append({"world": w.world_size, "status": p.status})
            continue
        s, d = p.stats, p.stats.distributed
        peak = s.compute.peak_memory_bytes
        rows.append({
            "world": f"1 (x{w.concurrent_copies} loaded)" if w.loaded else w.world_size,
            "layout": f"1x{w.concurrent_copies}" if w.loaded else f"{w.nnodes}x{w.nproc_per_node}",
            "batch": w.batch_size, "global": d.global_batch,
            "rate": f"{s.throughput.samples_per_s:.1f}", "per": f"{d.samples_per_s_per_worker:.1f}",
            "sp1": _f(d.speedup_vs_1_worker), "ef1": _f(d.efficiency_vs_1_worker, "{:.0%}"),
            "spn": _f(d.speedup_vs_1_node), "efn": _f(d.efficiency_vs_1_node, "{:.0%}"),
            "step": f"{s.timing.median_ms:.2f}", "fwd": f"{d.forward_ms:.2f}",
            "bwd": f"{d.backward_ms:.2f}", "opt": f"{d.optimizer_ms:.2f}",
            "cexp": _f(d.comm_exposed_ms, "{:.2f}"),
            "cov": _f(d.comm_overlapped_ms, "{:.2f}"),
            "bytes": binary_bytes(int(comm_bytes(d))),
            "mem": binary_bytes(int(peak)) if peak else "",
            "strag": f"{d.slowest_rank} ({d.straggler_ratio:.2f}x)", "status": p.status,
        })
    return rows


COLUMNS = (("world", "workers"), ("layout", "nodes x procs"), ("batch", "batch/worker"),
           ("global", "global batch"), ("rate", "samples/s"), ("per", "per worker"),
           ("sp1", "speedup vs 1 worker"), ("ef1", "eff."), ("spn", "speedup vs 1 node"),
           ("efn", "eff."), ("step", "step ms"), ("fwd", "fwd"), ("bwd", "bwd"), ("opt", "opt"),
           ("cexp", "comm exposed"), ("cov", "comm overlapped"), ("bytes", "communicated/step"),
           ("mem", "peak mem/rank"),
           ("strag", "slowest rank"), ("status", "status"))


def seed_rows(points, device: str) -> list[dict]:
    """The seed's projection table: network, batch, nodes, GPUs, time [min]."""
    return [{"network": p.workload.model, "batch": p.workload.batch_size, "nodes": p.workload.nnodes,
             "gpus": p.workload.world_size, "time": f"{p.stats.distributed.time_to_train_min:.0f}"}
            for p in points if p.status in MEASURED_STATUSES and not p.workload.loaded]


def loaded_lines(points) -> list[str]:
    """Each loaded reference against the lone worker of the same batch: how much slower N
    co-located copies computed (the compute a prediction of N workers per node starts from)."""
    from nnscale.report.points import lone_reference

    out = []
    for p in points:
        w = p.workload
        if p.status not in MEASURED_STATUSES or not w.loaded:
            continue
        t, lone = p.stats.timing.median_ms, lone_reference(p, points)
        alone = lone.stats.timing.median_ms if lone else None
        out.append(f"loaded reference: {w.concurrent_copies} one-worker copies at once, batch "
                   f"{w.batch_size}: {t:.2f} ms per step (rank 0)"
                   + (f" against {alone:.2f} ms alone ({t / alone - 1:+.1%})" if alone else ""))
    return out


def print_points(points, cfg: ScaleConfig, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps([p.to_dict() for p in points], indent=2, default=str))
        return
    print(render(table_rows(points), COLUMNS))
    ok = [p for p in points if p.status in MEASURED_STATUSES]
    if not ok:
        return
    last = ok[-1].stats.distributed
    print(f"\n{cfg.scaling} scaling; times are medians in ms; speedup and efficiency against "
          f"{last.baseline_1_worker or 'no 1-worker point in this run'}"
          + ("; against 1 node: " + (last.baseline_1_node or "none")
             if cfg.launching.nnodes > 1 else ""))
    paired = [(p.workload.world_size, sorted(p.stats.distributed.paired_speedups)) for p in ok
              if p.workload.world_size > 1 and p.stats.distributed.paired_speedups
              and len(p.stats.distributed.paired_speedups) > 1]
    if paired:  # launches interleaved round by round (distributed/scaling.py)
        print(f"speedup paired over {len(paired[0][1])} rounds (each round's rate over that round's "
              "1-worker rate), median [range]: " + "; ".join(
                  f"{ws} workers {statistics.median(s):.3g} [{s[0]:.3g}-{s[-1]:.3g}]" for ws, s in paired))
    for line in loaded_lines(points):
        print(line)
    if last.worker:  # every world size's workers alike (launch.split_cores)
        print(f"a worker: {last.worker} (rank 0), the same at every world size")
    unit = "GPUs" if cfg.launching.device == "cuda" else "workers"
    print(f"\nProjected time to train: {cfg.epochs} epochs of {cfg.dataset_size:,} samples\n")
    print(render(seed_rows(points, cfg.launching.device),
                 (("network", "network"), ("batch", "batch"), ("nodes", "nodes"), ("gpus", unit),
                  ("time", "time [min]"))))


def handle(args) -> int:
    cfg = config_from_args(args)
    sink = open_sink(args, cfg.launching.node_rank)
    where = f" (run {sink.run_name!r} in {sink.store.url})" if sink.store else ""
    try:
        points = run_scale(cfg, sink)
    except WorldSizeFailed as e:
        done = [p for p in e.points if p.status in MEASURED_STATUSES]
        if done and args.format == "table":
            print_points(done, cfg, args.format)
        kept = f"{len(done)} point(s) before it stored{where}" if sink.store else "not stored here"
        print(f"nnscale: error: {e}; {kept}", file=sys.stderr)
        return 1
    finally:
        if sink.store is not None:
            sink.store.close()
    if cfg.launching.node_rank != 0 and args.format == "table":
        print(f"node rank {cfg.launching.node_rank}: {len(points)} point(s) measured; node rank 0 "
              "stores them")
        return 0
    print_points(points, cfg, args.format)
    if where and args.format == "table":
        print(f"\nstored{where}")
    return 0

