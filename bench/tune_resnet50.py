"""Benchmark: `nnscale tune` on ResNet-50 inference, batch 16, on this CPU.

Runs the same function `nnscale tune` calls (`run_tune`) with its defaults: every precision the
CPU runs natively, channels-last off and on, torch.compile off and on (when a C++ compiler is
there), each candidate an isolated worker with the tune policy (warm-up <= 5 s, budget 10 s). Prints
every candidate's throughput against the fp32 NCHW eager baseline and against bf16 + channels-last
(eager), and checks that the configuration tune picks is at least as fast as bf16 + channels-last.

    python bench/tune_resnet50.py                    # results in a temporary store
    python bench/tune_resnet50.py --db tune.db --batch 16 --budget 10
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    from nnscale.measure.progress import TerminalProgress, config_label
    from nnscale.measure.tune import TUNE_POLICY, TuneConfig, run_tune
    from nnscale.store import open_store

    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--mode", default="inference")
    p.add_argument("--budget", type=float, default=TUNE_POLICY.budget_s)
    p.add_argument("--db", help="results store (default: a temporary file)")
    args = p.parse_args()
    db = args.db or os.path.join(tempfile.mkdtemp(prefix="nnscale-tune-"), "tune.db")
    policy = TUNE_POLICY.__class__(**dict(TUNE_POLICY.to_dict(), budget_s=args.budget))
    config = TuneConfig(args.model, modes=(args.mode,), batches=(args.batch,), policy=policy)
    print(f"load {os.getloadavg()[0]:.2f}; store {db}")
    start = time.monotonic()
    with open_store(db) as store:
        result = run_tune(config, store, TerminalProgress())
    wall = time.monotonic() - start
    choice = result.choices[0]
    by_label = {config_label(m.workload): m for m in choice.tried}
    base = by_label.get("fp32")
    ref = by_label.get("bf16 cl")

    def rate(m):
        return m.stats.throughput.samples_per_s if m and m.status in ("ok", "unstable") else None

    print(f"\n{'configuration':<20}{'status':<10}{'img/s':>10}{'vs fp32':>10}{'vs bf16 cl':>12}{'compile s':>11}")
    for label, m in by_label.items():
        r = rate(m)
        vs_base = f"{r / rate(base):.2f}x" if r and rate(base) else ""
        vs_ref = f"{r / rate(ref):.2f}x" if r and rate(ref) else ""
        comp = m.stats.timing.compile_s
        print(f"{label:<20}{m.status:<10}{(f'{r:.2f}' if r else ''):>10}{vs_base:>10}{vs_ref:>12}"
              f"{(f'{comp:.0f}' if comp else ''):>11}")
    best = choice.best
    print(f"\ntune picks {config_label(best.workload)}: {rate(best):.2f} img/s, "
          f"{choice.speedup:.2f}x fp32 NCHW eager; bf16 + channels-last is "
          f"{rate(ref) / rate(base):.2f}x fp32 NCHW eager; tune took {wall / 60:.1f} min")
    ok = rate(best) >= rate(ref)
    print(f"target: the pick is at least as fast as bf16 + channels-last: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
