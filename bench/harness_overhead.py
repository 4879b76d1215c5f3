"""Benchmark: nnscale's reported throughput against a bare hand-written loop of the same model, batch
and settings, interleaved in one run (A B A B ...) — at two levels — and how long the default policy
takes to reach its CI target.

1. In one process (the harness's own cost, with the machine's drift cancelled): A is
   `measure()` timing the very step closure nnscale's torch backend builds, every iteration timed,
   throughput from the median; B is a plain loop over a second copy of the model (same seed) timed as
   one block with perf_counter: throughput = iterations × batch / elapsed. Blocks of ~`--block`
   seconds alternate A B, B A, ... so a slow drift of the machine favours neither. Which model is
   built first matters by itself (memory placement), so this runs in two fresh processes, A built
   first and B built first, and quotes the geometric mean of their medians.
2. End to end (what `nnscale sweep` reports of one process): A is one point in one worker process
   (`run_point`), forked from a pre-imported image as a sweep's workers are
   (measure/forkserver.py), with the default policy (warm-up until steady, then until ±2 % CI of
   the mean or 30 s); B is a fresh process running the plain loop with A's warm-up and iteration
   counts and the same thread environment. Pairs alternate A B, B A, ...

The target: reported throughput >= 0.99 × the bare loop's, i.e. the harness costs at most 1 %. The
mean-based harness throughput (batch / mean step time) is printed too: it is the like-for-like
comparison with B's block timing; the median is what nnscale reports.

    python bench/harness_overhead.py --threads 1          # ResNet-50: inference bs 16, training bs 8
    python bench/harness_overhead.py --model test-tiny-resnet --block 1 --rounds 1 --budget 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def bare_loop(model_name: str, mode: str, batch: int, threads: int):
    """The hand-written loop: returns run(iters) -> elapsed seconds. No nnscale code in the step."""
    import torch
    import torch.nn.functional as F

    from nnscale.zoo import create_model, model_info

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    info = model_info(model_name)
    model = create_model(model_name)
    x = torch.randn(batch, *info.input_shape)
    if mode == "inference":
        model.eval()

        def run(iters: int) -> float:
            with torch.inference_mode():
                start = time.perf_counter()
                for _ in range(iters):
                    model(x)
                return time.perf_counter() - start

        return run
    model.train()
    y = torch.randint(0, info.num_classes, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run(iters: int) -> float:
        start = time.perf_counter()
        for _ in range(iters):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    return run


def rates(batch: int, samples_ms) -> tuple[float, float]:
    return batch * 1000 / statistics.median(samples_ms), batch * 1000 / statistics.fmean(samples_ms)


def in_process(model: str, mode: str, batch: int, threads: int, blocks: int, block_s: float,
               first: str = "A") -> tuple[float, float]:
    from nnscale.measure.backends.base import get_backend
    from nnscale.measure.methodology import CpuTimer, MeasurePolicy, measure
    from nnscale.records import Workload
    from nnscale.zoo import model_info

    w = Workload(model, mode, batch, model_info(model).input_shape, threads=threads)
    # The model built first can be faster or slower by itself (memory placement: a torch training
    # step of the model built first ran up to 19 % slower here, both timed as blocks), so main()
    # runs both orders and quotes the geometric mean.
    if first == "A":
        step = get_backend("torch").prepare(w).step
        run = bare_loop(model, mode, batch, threads)
    else:
        run = bare_loop(model, mode, batch, threads)
        step = get_backend("torch").prepare(w).step
    timer = CpuTimer()
    for _ in range(3):  # both warm
        step()
        run(1)
    # Run the whole block: a target no block reaches, no warm-up (done above).
    policy = MeasurePolicy(target_rel_ci=1e-9, budget_s=block_s, warmup_max_iters=0, min_iters=2)
    ratios, mean_ratios = [], []
    for k in range(blocks):
        for side in ("AB" if k % 2 == 0 else "BA"):
            if side == "A":
                timed = measure(step, timer, policy)
                a_median, a_mean = rates(batch, timed.samples_ms)
                n = len(timed.samples_ms)
            else:  # the first pair is A B, so n (A's iteration count) is always known here
                b = n * batch / run(n)
        ratios.append(a_median / b)
        mean_ratios.append(a_mean / b)
    print(f"  in-process, {first} built first, {blocks} A/B block pairs of ~{block_s:g} s: median "
          f"ratio nnscale/bare {statistics.median(ratios):.4f} (mean-based "
          f"{statistics.median(mean_ratios):.4f}; pairs {min(ratios):.3f}..{max(ratios):.3f})", flush=True)
    return statistics.median(ratios), statistics.median(mean_ratios)


def harness(model: str, mode: str, batch: int, threads: int, budget: float) -> dict:
    """One point in one worker process, as `nnscale sweep` measures each of a point's processes:
    forked from a pre-imported image inside a fork-server session (end_to_end's), else spawned."""
    from nnscale.measure.methodology import MeasurePolicy
    from nnscale.measure.runner import PointSpec, default_timeout_s, run_point
    from nnscale.records import Workload
    from nnscale.zoo import model_info

    policy = MeasurePolicy(budget_s=budget, processes=1, max_processes=1)
    w = Workload(model, mode, batch, model_info(model).input_shape, threads=threads)
    m = run_point(PointSpec(w, policy, default_timeout_s(policy)))
    if m.status not in ("ok", "unstable"):
        raise SystemExit(f"harness point failed: {m.status} {m.error}")
    t = m.stats.timing
    return {"samples_per_s": m.stats.throughput.samples_per_s,
            "mean_samples_per_s": batch * 1000 / t.mean_ms, "iters": t.iterations,
            "warmup": t.warmup_iters, "status": m.status, "rel_ci": t.rel_ci,
            "measure_s": t.measure_s, "warmup_s": t.warmup_s,
            "start": m.stats.processes.worker_start or "spawn"}


def bare(model: str, mode: str, batch: int, threads: int, warmup: int, iters: int) -> dict:
    from nnscale.measure.runner import worker_env

    arg = json.dumps({"model": model, "mode": mode, "batch": batch, "threads": threads,
                      "warmup": warmup, "iters": iters})
    out = subprocess.run([sys.executable, __file__, "--bare", arg], env=worker_env(threads),
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bare_main(arg: str) -> None:
    a = json.loads(arg)
    run = bare_loop(a["model"], a["mode"], a["batch"], a["threads"])
    run(a["warmup"] + 1)  # + the harness's separately timed first call
    elapsed = run(a["iters"])
    print(json.dumps({"samples_per_s": a["iters"] * a["batch"] / elapsed, "elapsed_s": elapsed,
                      "load": os.getloadavg()[0]}))


def end_to_end(model: str, mode: str, batch: int, threads: int, rounds: int, budget: float) -> None:
    from nnscale.measure.forkserver import POOL

    with POOL.session():  # A's workers forked from pre-imported images, as in `nnscale sweep`
        _end_to_end(model, mode, batch, threads, rounds, budget)


def _end_to_end(model: str, mode: str, batch: int, threads: int, rounds: int, budget: float) -> None:
    a_runs, b_runs = [], []
    warm, iters = 10, 10  # B's counts before the first A exists
    for r in range(rounds):
        t0 = time.monotonic()
        if r % 2 == 0:
            a = harness(model, mode, batch, threads, budget)
            b = bare(model, mode, batch, threads, a["warmup"], a["iters"])
        else:
            b = bare(model, mode, batch, threads, warm, iters)
            a = harness(model, mode, batch, threads, budget)
        warm, iters = a["warmup"], a["iters"]
        a_runs.append(a)
        b_runs.append(b)
        print(f"  end-to-end pair {r + 1}: nnscale {a['samples_per_s']:.3f} img/s ({a['start']}ed worker; "
              f"mean-based {a['mean_samples_per_s']:.3f}; {a['status']}, CI ±{100 * a['rel_ci']:.2f} % after "
              f"{a['iters']} iters / {a['measure_s']:.1f} s, warm-up {a['warmup']} iters / "
              f"{a['warmup_s']:.1f} s) | bare {b['samples_per_s']:.3f} img/s (load {b['load']:.1f}) | ratio "
              f"{a['samples_per_s'] / b['samples_per_s']:.4f} [{time.monotonic() - t0:.0f} s]", flush=True)
    med_a = statistics.median(x["samples_per_s"] for x in a_runs)
    med_mean_a = statistics.median(x["mean_samples_per_s"] for x in a_runs)
    med_b = statistics.median(x["samples_per_s"] for x in b_runs)
    print(f"  end-to-end: median nnscale {med_a:.3f} img/s, bare {med_b:.3f} img/s, ratio "
          f"{med_a / med_b:.4f} (mean-based {med_mean_a / med_b:.4f}); load now "
          f"{os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--bare":
        return bare_main(sys.argv[2])
    if len(sys.argv) == 3 and sys.argv[1] == "--inproc":
        a = json.loads(sys.argv[2])
        got = in_process(a["model"], a["mode"], a["batch"], a["threads"], a["blocks"], a["block"],
                         a["first"])
        print(json.dumps(got))
        return None
    from nnscale.host import usable_cores

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet50")
    p.add_argument("--cases", default="inference:16,training:8", help="MODE:BATCH,...")
    p.add_argument("--threads", type=int, default=usable_cores())
    p.add_argument("--blocks", type=int, default=8, help="in-process A/B block pairs per case")
    p.add_argument("--block", type=float, default=6.0, help="seconds per in-process block")
    p.add_argument("--rounds", type=int, default=3, help="end-to-end A/B pairs per case (0: skip)")
    p.add_argument("--budget", type=float, default=30.0, help="nnscale's budget per end-to-end point")
    args = p.parse_args()
    print(f"{args.model}, {args.threads} threads, load {os.getloadavg()[0]:.2f}", flush=True)
    for case in args.cases.split(","):
        mode, batch = case.split(":")
        print(f"{mode} bs {batch}:", flush=True)
        if args.blocks:  # each build order in its own fresh process (in_process's comment)
            got = {}
            for first in ("A", "B"):
                arg = json.dumps({"model": args.model, "mode": mode, "batch": int(batch),
                                  "threads": args.threads, "blocks": args.blocks,
                                  "block": args.block, "first": first})
                out = subprocess.run([sys.executable, __file__, "--inproc", arg], check=True,
                                     capture_output=True, text=True)
                lines = out.stdout.rstrip().splitlines()
                print(lines[0], flush=True)
                got[first] = json.loads(lines[-1])
            print(f"  in-process, both build orders: ratio nnscale/bare "
                  f"{math.sqrt(got['A'][0] * got['B'][0]):.4f} (geometric mean; mean-based "
                  f"{math.sqrt(got['A'][1] * got['B'][1]):.4f})", flush=True)
        if args.rounds:
            end_to_end(args.model, mode, int(batch), args.threads, args.rounds, args.budget)


if __name__ == "__main__":
    main()
