"""Benchmark: nnscale's 2-worker DDP throughput against a bare torchrun DDP script doing the same steps.

Interleaved in one run (A B A B …), so that a machine whose load drifts affects both alike:
- A: one point exactly as `nnscale scale MODEL --nproc 2` measures it (`run_scale`: torchrun,
  c10d rendezvous, gloo, the methodology's warm-up and stopping rule, the separate instrumented
  pass); its reported throughput = global batch / median step time.
- B: `torchrun --nproc-per-node 2` running this file as a bare DDP script: the zoo's model in
  `DistributedDataParallel`, forward + cross-entropy + backward + SGD(momentum 0.9) + zero_grad,
  no hook, the same warm-up count as the preceding A, then the same number of steps timed as one
  block with perf_counter on rank 0: throughput = steps × global batch / elapsed. It gets the same
  threads and core pinning as nnscale's workers (OMP_NUM_THREADS, sched_setaffinity), so the
  comparison is of the harness only.

Target: median(A) / median(B) >= 0.98. A's mean-based throughput (global batch / mean step) is
shown too, the like-for-like comparison with B's block timing.

    python bench/ddp_overhead.py                            # pytorch-mnist-net, batch 32 per worker
    python bench/ddp_overhead.py --model test-tiny-resnet --batch 16 --rounds 3 --budget 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))


def bare_worker(a: dict) -> None:
    """Rank body of B (run by torchrun)."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from nnscale.zoo import create_model, model_info

    local = int(os.environ["LOCAL_RANK"])
    torch.set_num_threads(a["threads"])
    os.sched_setaffinity(0, a["cpus"][local * a["threads"]:(local + 1) * a["threads"]])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(1000 + rank)
    model = DDP(create_model(a["model"]))
    x = torch.randn(a["batch"], *model_info(a["model"]).input_shape)
    y = torch.randint(0, model_info(a["model"]).num_classes, (a["batch"],))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(a["warmup"]):
        step()
    dist.barrier()
    start = time.perf_counter()
    for _ in range(a["iters"]):
        step()
    elapsed = time.perf_counter() - start
    if rank == 0:
        rate = a["iters"] * a["batch"] * dist.get_world_size() / elapsed
        Path(a["out"]).write_text(json.dumps({"samples_per_s": rate}))
    dist.barrier()
    dist.destroy_process_group()


def run_bare(model: str, batch: int, warmup: int, iters: int, threads: int, cpus: list[int]) -> float:
    from nnscale.distributed.netutil import free_port

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        a = dict(model=model, batch=batch, warmup=warmup, iters=iters, threads=threads, cpus=cpus,
                 out=str(out))
        env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS=str(threads))
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
                               "2", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                               f"127.0.0.1:{free_port()}", __file__, "--bare-worker", json.dumps(a)],
                              env=env, capture_output=True, text=True)
        # torch's teardown sometimes aborts after the work is done (gloo at exit): the figure stands.
        if not out.exists():
            sys.exit(f"the bare DDP script failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
        return json.loads(out.read_text())["samples_per_s"]


def run_nnscale(model: str, batch: int, budget: float, breakdown: str):
    from nnscale.distributed import Launching, ScaleConfig, run_scale
    from nnscale.measure.methodology import MeasurePolicy

    cfg = ScaleConfig(model, Launching(nproc=(2,), timeout_s=600), batch_per_worker=batch,
                      policy=MeasurePolicy(budget_s=budget), breakdown=breakdown)
    (point,) = run_scale(cfg)
    return point


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--bare-worker":
        bare_worker(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="pytorch-mnist-net")
    parser.add_argument("--batch", type=int, default=32, help="per worker")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=10.0, help="nnscale's measurement seconds")
    parser.add_argument("--breakdown", choices=("inline", "separate"), default="inline",
                        help="nnscale's breakdown mode (separate: plain DDP in the measured steps)")
    args = parser.parse_args()
    from nnscale.distributed.launch import split_cores

    cores = split_cores(2)
    if cores.cpus is None:
        sys.exit("needs at least 2 usable cores")
    a_rates, a_means, b_rates = [], [], []
    for i in range(args.rounds):
        point = run_nnscale(args.model, args.batch, args.budget, args.breakdown)
        s = point.stats
        a_rates.append(s.throughput.samples_per_s)
        a_means.append(s.distributed.global_batch * 1000.0 / s.timing.mean_ms)
        b_rates.append(run_bare(args.model, args.batch, s.timing.warmup_iters, len(point.samples_ms),
                                cores.threads, list(cores.cpus)))
        print(f"round {i + 1}: nnscale {a_rates[-1]:.1f} samples/s (mean-based {a_means[-1]:.1f}, "
              f"{len(point.samples_ms)} steps, {point.status}), bare {b_rates[-1]:.1f}, "
              f"ratio {a_rates[-1] / b_rates[-1]:.3f}", flush=True)
    ratio = statistics.median(a_rates) / statistics.median(b_rates)
    print(f"\n{args.model}, batch {args.batch} per worker, 2 gloo workers x {cores.threads} "
          f"thread(s), breakdown {args.breakdown}")
    print(f"nnscale median {statistics.median(a_rates):.1f} samples/s (mean-based "
          f"{statistics.median(a_means):.1f}); bare {statistics.median(b_rates):.1f} samples/s")
    print(f"ratio median(nnscale)/median(bare) = {ratio:.3f} (target >= 0.98); mean-based "
          f"{statistics.median(a_means) / statistics.median(b_rates):.3f}")


if __name__ == "__main__":
    main()
