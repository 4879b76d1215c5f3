"""`nnscale allreduce [--sizes 1K..256M] [--nproc 2]`: all-reduce time, algbw and busbw (nccl-tests)."""

from __future__ import annotations

import json
import sys

from nnscale.cli.scale import default_nproc, open_sink
from nnscale.distributed.allreduce import run_allreduce
from nnscale.distributed.config import (ALLREDUCE_DTYPES, DEFAULT_TIMEOUT_S, DEVICES,
                                        AllreduceConfig, Launching, endpoint_option, parse_nproc,
                                        sizes_option)
from nnscale.distributed.scaling import ScaleFailed
from nnscale.format import binary_bytes, render
from nnscale.measure.methodology import MeasurePolicy
from nnscale.cli.values import check_thread_option
from nnscale.measure.validate import check_seconds

COLUMNS = (("world", "workers"), ("size", "size"), ("time", "time ms"), ("algbw", "algbw GB/s"),
           ("busbw", "busbw GB/s"), ("n", "samples"), ("status", "status"))


def add_parser(sub) -> None:
    p = sub.add_parser("allreduce", help="all-reduce microbenchmark: time, algbw, busbw")
    p.add_argument("--sizes", default="1K..256M", help="LOW..HIGH doubling, or a list (1K,1M)")
    p.add_argument("--nproc", help="workers per node, e.g. 2,4,8 (default: as `scale`)")
    p.add_argument("--nnodes", type=int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--rdzv-endpoint", metavar="HOST:PORT")
    p.add_argument("--bandwidth-cap", metavar="RATE",
                   help="record that the link is capped at RATE (tc units, e.g. 200mbit); "
                        "nnscale does not set it")
    p.add_argument("--bandwidth-cap-burst", metavar="SIZE",
                   help="record the cap's tbf bucket (tc size units, e.g. 1000kbit = 1,024,000 bits, "
                        "125kb); needs --bandwidth-cap")
    p.add_argument("--local-addr")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument("--threads-per-worker", type=int, help="CPU: threads per worker")
    p.add_argument("--dtype", choices=ALLREDUCE_DTYPES, default="fp32")
    p.add_argument("--budget", type=float, default=2.0, metavar="S", help="seconds per size")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S")
    p.add_argument("--db", help="results store (default sqlite:///nnscale.db)")
    p.add_argument("--run", help="run name (created if new)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handle=handle)


def handle(args) -> int:
    check_seconds(args.timeout, "--timeout")
    check_thread_option(args.threads_per_worker, "--threads-per-worker")
    launching = Launching(nproc=parse_nproc(args.nproc or default_nproc(args.device)),
                          device=args.device, nnodes=args.nnodes, node_rank=args.node_rank,
                          rdzv_endpoint=endpoint_option(args.rdzv_endpoint),
                          local_addr=args.local_addr, timeout_s=args.timeout,
                          threads_per_worker=args.threads_per_worker,
                          bandwidth_cap=args.bandwidth_cap,
                          bandwidth_cap_burst=args.bandwidth_cap_burst)
    policy = MeasurePolicy(budget_s=args.budget, warmup_max_s=min(2.0, args.budget))
    cfg = AllreduceConfig(launching, sizes_option(args.sizes), args.dtype, policy)
    sink = open_sink(args, launching.node_rank)
    try:
        points = run_allreduce(cfg, sink)
    except ScaleFailed as e:
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
