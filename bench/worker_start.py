"""Benchmark: a forked worker against a spawned one (measure/forkserver.py) — start-up saved, and
no bias in what is measured.

A and B measure the same point, one process each: A forked from a pre-imported interpreter, B a new
interpreter (`--spawn`). In pairs, alternating order (A B, B A, ...) so that the machine's drift
hits both alike (the guide's rule for comparisons on the shared VM). Per pair: the ratio of the two
processes' median step times (fork / spawn; 1.0 = no bias) and each one's wall time outside warm-up
and measurement (its start-up). Prints the median and range of both over the pairs.

    python bench/worker_start.py                              # alexnet inference batch 1, 8 pairs
    python bench/worker_start.py --model resnet50 --batch 1 --pairs 6 --budget 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="alexnet")
    p.add_argument("--mode", default="inference")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--budget", type=float, default=2.0, help="measurement seconds per process")
    args = p.parse_args()

    from nnscale.measure.forkserver import IMAGES, POOL
    from nnscale.measure.methodology import MeasurePolicy
    from nnscale.measure.runner import PointSpec, run_point
    from nnscale.records import Workload
    from nnscale.zoo import model_info

    w = Workload(args.model, args.mode, args.batch, tuple(model_info(args.model).input_shape),
                 threads=args.threads)
    base = MeasurePolicy(target_rel_ci=0.01, budget_s=args.budget, warmup_max_s=2.0,
                         processes=1, max_processes=1)
    policies = {"fork": base, "spawn": replace(base, worker_start="spawn")}

    def one(how: str) -> dict:
        t0 = time.monotonic()
        m = run_point(PointSpec(w, policies[how], 300))
        wall = time.monotonic() - t0
        t = m.stats.timing
        assert m.stats.processes.worker_start == how, m.stats.processes.worker_start
        return {"median_ms": t.median_ms, "start_s": wall - (t.warmup_s or 0) - (t.measure_s or 0),
                "iterations": t.iterations, "status": m.status}

    pairs = []
    with POOL.session():
        for _ in range(IMAGES):  # the images start here, outside the pairs (a study sets that aside too)
            one("fork")
        for i in range(args.pairs):
            order = ("fork", "spawn") if i % 2 == 0 else ("spawn", "fork")
            got = {how: one(how) for how in order}
            pairs.append(got)
            print(f"pair {i + 1} ({' '.join(order)}): fork {got['fork']['median_ms']:.2f} ms "
                  f"(start {got['fork']['start_s']:.2f} s), spawn {got['spawn']['median_ms']:.2f} ms "
                  f"(start {got['spawn']['start_s']:.2f} s)", flush=True)
    ratios = [q["fork"]["median_ms"] / q["spawn"]["median_ms"] for q in pairs]
    starts = {how: [q[how]["start_s"] for q in pairs] for how in ("fork", "spawn")}
    summary = {
        "workload": f"{args.model} {args.mode} batch {args.batch}, {args.threads} threads",
        "pairs": len(pairs),
        "step_ratio_fork_over_spawn": {"median": statistics.median(ratios), "min": min(ratios),
                                       "max": max(ratios)},
        "start_s": {how: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                    for how, v in starts.items()},
    }
    r = summary["step_ratio_fork_over_spawn"]
    print(f"step time fork / spawn: median {r['median']:.3f} (range {r['min']:.3f}-{r['max']:.3f}) "
          f"over {len(pairs)} pairs")
    for how, v in summary["start_s"].items():
        print(f"start-up {how}: median {v['median']:.2f} s (range {v['min']:.2f}-{v['max']:.2f})")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
