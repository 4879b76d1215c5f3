"""The launch options `nnscale scale` and `nnscale allreduce` share, declared once, and the
`Launching` they make: where the workers start, how many, and the link cap they run under (parsed
here, at the edge, into numbers: nnscale.linkcap)."""

from __future__ import annotations

from nnscale.distributed.config import DEVICES, Launching, endpoint_option, parse_nproc
from nnscale.linkcap import burst_bits, rate_bit_per_s
from nnscale.cli.values import check_thread_option

LAUNCH_OPTIONS = (
    ("--nproc", dict(help="workers per node, e.g. 1,2,4,8 (default: powers of 2 up to the GPUs, "
                          "or the cores on CPU)")),
    ("--nnodes", dict(type=int, default=1)),
    ("--node-rank", dict(type=int, default=0, help="this node's rank; rank 0 stores")),
    ("--rdzv-endpoint", dict(metavar="HOST:PORT", help="c10d rendezvous (multi-node)")),
    ("--bandwidth-cap", dict(metavar="RATE", help="record that the link is capped at RATE (tc "
                                                  "units, e.g. 200mbit); nnscale does not set it")),
    ("--bandwidth-cap-burst", dict(metavar="SIZE", help="record the cap's tbf bucket (tc size "
                                                        "units, e.g. 1000kbit = 1,024,000 bits, "
                                                        "125kb); needs --bandwidth-cap")),
    ("--local-addr", dict(help="this node's address for the others (default: the one routing to "
                               "the endpoint)")),
    ("--device", dict(choices=DEVICES, default="cpu")),
    ("--threads-per-worker", dict(type=int, help="CPU: threads per worker (default: the node's "
                                                 "cores split evenly)")),
)


def add_launch_options(p) -> None:
    for flag, kw in LAUNCH_OPTIONS:
        p.add_argument(flag, **kw)


def default_nproc(device: str) -> str:
    from nnscale.distributed.config import cuda_devices, usable_cpus

    top = cuda_devices() if device == "cuda" else len(usable_cpus())
    values, n = [], 1
    while n < top:
        values.append(n)
        n *= 2
    return ",".join(map(str, values + [max(top, 1)]))


def launching_from_args(args, timeout_s: float) -> Launching:
    """The Launching of the parsed options (UserError for a bad value). `nnscale slurm` checks its
    scale configuration with a namespace that may lack the cap and thread options."""
    threads = getattr(args, "threads_per_worker", None)
    check_thread_option(threads, "--threads-per-worker")
    rate, burst = getattr(args, "bandwidth_cap", None), getattr(args, "bandwidth_cap_burst", None)
    return Launching(nproc=parse_nproc(args.nproc or default_nproc(args.device)),
                     device=args.device, nnodes=args.nnodes, node_rank=args.node_rank,
                     rdzv_endpoint=endpoint_option(args.rdzv_endpoint),
                     local_addr=args.local_addr, timeout_s=timeout_s, threads_per_worker=threads,
                     bandwidth_cap_bit_per_s=rate_bit_per_s(rate) if rate is not None else None,
                     bandwidth_cap_burst_bytes=burst_bits(burst) / 8 if burst is not None else None)
