"""`nnscale allreduce [--sizes 1K..256M] [--nproc 2]`: all-reduce time, algbw and busbw (nccl-tests)."""

from __future__ import annotations

import json
import sys

from nnscale.cli.launch_options import add_launch_options, launching_from_args
from nnscale.cli.scale import LAUNCHES_OPTION, open_sink
from nnscale.distributed.allreduce import run_allreduce
from nnscale.distributed.config import (ALLREDUCE_DTYPES, DEFAULT_TIMEOUT_S, AllreduceConfig,
                                        sizes_option)
from nnscale.distributed.launch_loop import WorldSizeFailed
from nnscale.format import binary_bytes, render
from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.validate import check_seconds

COLUMNS = (("world", "workers"), ("size", "size"), ("time", "time ms"), ("algbw", "algbw GB/s"),
           ("busbw", "busbw GB/s"), ("n", "samples"), ("status", "status"))


def add_parser(sub) -> None:
    p = sub.add_parser("allreduce", help="all-reduce microbenchmark: time, algbw, busbw")
    p.add_argument("--sizes", default="1K..256M", help="LOW..HIGH doubling, or a list (1K,1M)")
    add_launch_options(p)
    p.add_argument("--dtype", choices=ALLREDUCE_DTYPES, default="fp32")
    p.add_argument("--budget", type=float, default=2.0, metavar="S",
                   help="measurement seconds per size, split over its launches")
    p.add_argument(LAUNCHES_OPTION[0], **LAUNCHES_OPTION[1])
    p.add_argument("--compute-before", type=float, default=0.0, metavar="MS",
                   help="busy compute on every rank before each timed call, untimed (default 0: "
                        "back to back, as nccl-tests; a DDP step's compute times its calls as DDP meets them)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S")
    p.add_argument("--db", help="results store (default sqlite:///nnscale.db)")
    p.add_argument("--run", help="run name (created if new)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handle=handle)


def handle(args) -> int:
    check_seconds(args.timeout, "--timeout")
    launching = launching_from_args(args, args.timeout)
    policy = MeasurePolicy(budget_s=args.budget, warmup_max_s=min(2.0, args.budget))
    cfg = AllreduceConfig(launching, sizes_option(args.sizes), args.dtype, policy,
                          launches=args.launches, compute_before_ms=args.compute_before)
    sink = open_sink(args, launching.node_rank)
    try:
        points = run_allreduce(cfg, sink)
    except WorldSizeFailed as e:
        print(f"nnscale: error: {e}", file=sys.stderr)
        return 1
    finally:
        if sink.store is not None:
            sink.store.close()
    if args.format == "json":
        print(json.dumps([p.to_dict() for p in points], indent=2, default=str))
        return 0
    rows = [{"world": p.workload.world_size, "size": binary_bytes(p.stats.allreduce.size_bytes),
             "time": f"{p.stats.timing.median_ms:.4f}",
             "algbw": f"{p.stats.allreduce.algbw_gb_per_s:.3f}",
             "busbw": f"{p.stats.allreduce.busbw_gb_per_s:.3f}", "n": p.stats.timing.iterations,
             "status": p.status}
            for p in points]
    print(render(rows, COLUMNS))
    print("\nalgbw = size/time, busbw = algbw*2(n-1)/n (nccl-tests), GB = 1e9 bytes; time is the "
          "median over calls of the slowest rank")
    if sink.store is not None:
        print(f"stored (run {sink.run_name!r} in {sink.store.url})")
    return 0
