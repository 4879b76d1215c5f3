"""Benchmark: does a gloo all-reduce cost the same back to back as after a training step's compute?

`nnscale allreduce` (and the study's calibration, which the prediction fits) times calls back to
back, as nccl-tests does. A DDP step issues its bucket's all-reduce after ~20 ms of forward and
backward, with the ranks a little apart. On a CPU VM the two need not cost the same: caches are
cold after compute, and a rank that finishes first sleeps until its peer's data arrives. This
times one size four ways, in one torchrun launch of 2 ranks (1 thread each, pinned one core
each, as the study's workers are); the time of a call is the slowest rank's, as in nnscale:

    back2back     calls back to back (the calibration's pattern)
    barrier       a barrier before every call (the ranks lined up)
    compute       20 ms of matrix products before every call, rank 1 0.6 ms longer (DDP's pattern:
                  the per-rank compute of pytorch-mnist-net differed by 0.6 ms in `make run`)
    compute-same  20 ms on both ranks

    python bench/allreduce_patterns.py                     # 1.72 MB, DDP's bucket of pytorch-mnist-net
    python bench/allreduce_patterns.py --bytes 4194304 --calls 300

Prints, per pattern, the 10th, 50th and 90th percentile and the mean per call (ms) and the share
of calls over 2.5 ms (gloo's loopback calls on the session-9 VM are bimodal: ~0.7 ms or ~4 ms).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

PATTERNS = ("back2back", "barrier", "compute", "compute-same")


def rank_main(size_bytes: int, calls: int) -> None:
    import torch
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    os.sched_setaffinity(0, {rank % os.cpu_count()})
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    x = torch.ones(max(1, size_bytes // 4))
    a = torch.randn(256, 256)

    def busy(ms: float) -> None:
        t = time.perf_counter()
        while (time.perf_counter() - t) * 1e3 < ms:
            a @ a

    for _ in range(20):  # warm-up: connections, buffers
        dist.all_reduce(x)
    for pattern in PATTERNS:
        times = []
        for _ in range(calls):
            if pattern == "barrier":
                dist.barrier()
            elif pattern == "compute":
                busy(20.0 + (0.6 if rank == 1 else 0.0))
            elif pattern == "compute-same":
                busy(20.0)
            t = time.perf_counter()
            dist.all_reduce(x)
            times.append((time.perf_counter() - t) * 1e3)
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, times)
        if rank == 0:
            s = sorted(max(col) for col in zip(*gathered))
            q = lambda p: s[int(p * (len(s) - 1))]  # noqa: E731
            slow = sum(t > 2.5 for t in s) / len(s)
            print(f"{pattern:13s} p10 {q(0.1):.2f}  p50 {q(0.5):.2f}  p90 {q(0.9):.2f}  "
                  f"mean {sum(s) / len(s):.2f} ms  calls over 2.5 ms {slow:.0%}", flush=True)
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bytes", type=int, default=1_720_000, help="message size (default 1.72 MB)")
    p.add_argument("--calls", type=int, default=150, help="timed calls per pattern (default 150)")
    p.add_argument("--port", type=int, default=29556)
    args = p.parse_args()
    if "RANK" in os.environ:
        rank_main(args.bytes, args.calls)
        return
    print(f"gloo all-reduce of {args.bytes} bytes, 2 ranks of 1 thread, {args.calls} calls per pattern")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", str(args.port), __file__, "--bytes", str(args.bytes), "--calls", str(args.calls)]
    sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
