"""Benchmark: language models measured on this CPU — a real `nnscale sweep` of tiny-lm and GPT-2
small (prefill, decode, training) with tokens/s and MFU, and the harness's overhead against a bare
hand-written loop of the same model.

1. Sweep: `run_sweep` exactly as `nnscale sweep MODEL --seq-len S --mode all` runs it (fresh worker
   processes, the store), into a SQLite file; MFU against the device's measured fp32 GEMM peak
   (`nnscale device`, cached per machine: measured here first if missing).
2. Overhead, in one process: A is `measure()` timing the very step closure the torch backend builds
   for the LM workload (every iteration timed, throughput from the median); B is a plain loop over
   a second copy of the model (same seed) calling Hugging Face's forward directly, timed as one
   block with perf_counter. Blocks alternate A B, B A, A B, ... (A B B A A B ...), so a slow drift
   of the machine favours neither; each pair gives a ratio A/B. Target >= 0.98; the median and the
   range of the pairs are printed.

    python bench/lm_sweep.py                       # the figures in docs/benchmarks.md
    python bench/lm_sweep.py --skip-sweep --pairs 6 --block 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def bare_loop(model_name: str, mode: str, batch: int, seq: int, threads: int):
    """run(iters) -> elapsed seconds of a hand-written loop: no nnscale code in the step."""
    import torch
    import torch.nn.functional as F

    from nnscale.zoo import create_model

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    lm = create_model(model_name)
    hf, vocab = lm.hf, lm.shape.vocab_size
    ids = torch.randint(0, vocab, (batch, seq))
    if mode == "inference":
        hf.eval()

        def run(iters: int) -> float:
            with torch.inference_mode():
                start = time.perf_counter()
                for _ in range(iters):
                    hf(input_ids=ids, use_cache=True)
                return time.perf_counter() - start

        return run
    hf.train()
    opt = torch.optim.SGD(hf.parameters(), lr=0.01, momentum=0.9)

    def run(iters: int) -> float:
        start = time.perf_counter()
        for _ in range(iters):
            logits = hf(input_ids=ids, use_cache=False).logits
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    return run


def overhead(model: str, mode: str, batch: int, seq: int, threads: int, pairs: int, block_s: float) -> None:
    from nnscale.measure.backends.base import get_backend
    from nnscale.measure.methodology import CpuTimer, MeasurePolicy, measure
    from nnscale.records import Workload

    w = Workload(model, mode, batch, (seq,), threads=threads)
    step = get_backend("torch").prepare(w).step
    run = bare_loop(model, mode, batch, seq, threads)
    for _ in range(3):  # both warm
        step()
        run(1)
    timer = CpuTimer()
    policy = MeasurePolicy(target_rel_ci=1e-9, budget_s=block_s, warmup_max_iters=0, min_iters=2)
    ratios, mean_ratios, n = [], [], 3
    for k in range(pairs):
        a = a_mean = b = None
        for side in ("AB" if k % 2 == 0 else "BA"):
            if side == "A":
                timed = measure(step, timer, policy)
                a = batch * 1000 / statistics.median(timed.samples_ms)
                a_mean = batch * 1000 / statistics.fmean(timed.samples_ms)
                n = len(timed.samples_ms)
            else:  # as many iterations as A's last block took
                b = n * batch / run(n)
        ratios.append(a / b)
        mean_ratios.append(a_mean / b)  # like for like with B's block timing
    print(f"  overhead {model} {mode} bs {batch} S {seq}: {pairs} A/B pairs of ~{block_s:g} s, ratio "
          f"nnscale/bare median {statistics.median(ratios):.4f}, range {min(ratios):.4f}..{max(ratios):.4f} "
          f"(pairs {', '.join(f'{r:.3f}' for r in ratios)}); mean-based median "
          f"{statistics.median(mean_ratios):.4f}, range {min(mean_ratios):.4f}..{max(mean_ratios):.4f}; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)


def sweep(model: str, seq: int, batches: tuple[int, ...], threads: int, budget: float, db: str,
          modes: tuple[str, ...] = ("inference", "decode", "training"), timeout_s: float | None = None) -> None:
    from nnscale.measure.methodology import MeasurePolicy
    from nnscale.measure.sweep import SweepConfig, run_sweep
    from nnscale.store import open_store

    policy = MeasurePolicy(budget_s=budget, warmup_max_s=max(2.0, budget / 2), processes=1,
                           max_processes=1)
    cfg = SweepConfig(model=model, modes=modes, batches=batches, threads=threads, input_shape=(seq,),
                      policy=policy, timeout_s=timeout_s)
    t0 = time.monotonic()
    with open_store(db) as store:
        result = run_sweep(cfg, store, run=f"{model}-{seq}-{'-'.join(modes)}-{int(time.time())}")
    print(f"  sweep {model} S {seq} ({time.monotonic() - t0:.0f} s), load {os.getloadavg()[0]:.1f}:")
    print("  | phase | batch | tokens/s (95 % CI) | tokens/s per sequence | MFU | peak memory | status |")
    print("  |---|---|---|---|---|---|---|")
    for m in result.measurements:
        t, c = m.stats.throughput, m.stats.compute

        def f(v, scale=1.0, digits=1):
            return "–" if v is None else f"{scale * v:,.{digits}f}"

        ci = f"{f(t.tokens_per_s_ci_low)}–{f(t.tokens_per_s_ci_high)}"
        peak = c.peak_memory_bytes
        mem = "–" if peak is None else f"{peak / 2**20:.0f} MiB"
        print(f"  | {t.lm_phase or m.workload.mode} | {m.workload.batch_size} | {f(t.tokens_per_s)} ({ci}) "
              f"| {f(t.tokens_per_s_per_sequence)} | {f(c.mfu, 100, 2)} % | {mem} | {m.status} |", flush=True)


def main() -> None:
    from nnscale.measure.device import cached_profile, device_name, measure_device

    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pairs", type=int, default=6, help="A/B pairs per overhead case (>= 6)")
    p.add_argument("--block", type=float, default=3.0, help="seconds per overhead block")
    p.add_argument("--budget", type=float, default=6.0, help="sweep budget per point")
    p.add_argument("--skip-sweep", action="store_true")
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--db", default=None, help="SQLite file for the sweep (default: a temporary one)")
    p.add_argument("--only", metavar="MODEL:MODE", help="sweep just this, e.g. gpt2:training")
    p.add_argument("--timeout", type=float, default=None, help="per point (default: the sweep's)")
    args = p.parse_args()
    print(f"{args.threads} threads, load {os.getloadavg()[0]:.2f}", flush=True)
    if not args.skip_sweep:
        if cached_profile(device_name("cpu")) is None:
            measure_device("cpu")
        peak = cached_profile(device_name("cpu")).gemm_flop_per_s.get("fp32")
        print(f"  fp32 GEMM peak (nnscale device): {peak / 1e9:.1f} GFLOP/s", flush=True)
        db = args.db or os.path.join(tempfile.mkdtemp(), "lm.db")
        plan = [("tiny-lm", (1, 4, 16)), ("gpt2", (1, 4))]
        for model, batches in plan:
            if args.only and args.only.split(":")[0] != model:
                continue
            modes = (args.only.split(":")[1],) if args.only else ("inference", "decode", "training")
            sweep(model, 128, batches, args.threads, args.budget, db, modes, args.timeout)
    if not args.skip_overhead:
        for model, mode, batch in (("tiny-lm", "training", 4), ("tiny-lm", "inference", 4),
                                   ("gpt2", "training", 1), ("gpt2", "inference", 1)):
            overhead(model, mode, batch, 128, args.threads, args.pairs, args.block)


if __name__ == "__main__":
    main()
