"""Benchmark: each framework backend's reported throughput against a minimal native loop of the same
framework doing the same step on the same model, batch and threads, interleaved A B, B A, ...

Two levels, as bench/harness_overhead.py does for torch:

1. In-process (the harness's own cost): in one fresh process per framework, A = `measure()` timing
   the step the nnscale backend builds, every iteration timed, throughput from the median; B = the
   native step below on a second model, timed as one block. Blocks alternate A B, B A, ... The
   model built first can be faster or slower by itself (memory placement), so each case runs in
   two processes, A built first and B built first, and the geometric mean of the two is quoted.
2. End to end (what `nnscale sweep` reports): A is one `run_point` in a fresh worker with the given
   policy (warm-up until steady, then until the CI target or the budget), median throughput; B is a
   fresh process running the native loop with A's warm-up and iteration counts, timed as one block:
   throughput = iterations × batch / elapsed. Process-to-process variance (±10 % for small steps
   here) dominates this level; it shows nothing is lost between the worker and the store.

- torch: `model(x)` under `torch.inference_mode()`; training: forward, cross-entropy, zero_grad,
  backward, SGD(momentum=0.9).step().
- tensorflow: the Keras model in a `tf.function` (`--xla`: jit_compile=True), the output or loss
  fetched with `.numpy()` each step; training: GradientTape + SGD(momentum=0.9).apply.
- jax: the Keras model through `stateless_call` in `jax.jit`, `block_until_ready` each step;
  training: value_and_grad + stateless_apply with donated state.
- onnxruntime: the exported model, input and output bound once with I/O binding,
  `session.run_with_iobinding` each step (inference only).

Each framework runs with the same thread settings as its backend (torch.set_num_threads; TF intra-op
N, inter-op 1; XLA_FLAGS intra_op_parallelism_threads; ORT intra_op_num_threads). The target:
A >= 0.98 × B for every framework (docs/benchmarks.md).

    python bench/framework_overhead.py                       # tf-mnist-convnet bs 64, both modes
    python bench/framework_overhead.py --model resnet50-v1 --batch 16 --rounds 3
    python bench/framework_overhead.py --rounds 1 --budget 1 --model test-tiny-mlp --batch 8  # smoke
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, SRC)


def _keras(framework: str):
    os.environ["KERAS_BACKEND"] = framework
    import keras

    return keras


def native_step(framework: str, model: str, mode: str, batch: int, threads: int, xla: bool):
    """The hand-written step of `framework` (module docstring); returns step()."""
    from nnscale.zoo import model_info

    c, h, w = model_info(model).input_shape
    if framework == "torch":
        import torch
        import torch.nn.functional as F

        from nnscale.zoo import create_model

        torch.manual_seed(0)
        torch.set_num_threads(threads)
        net = create_model(model)
        x = torch.randn(batch, c, h, w)
        if mode == "inference":
            net.eval()

            def step():
                with torch.inference_mode():
                    return net(x)
            return step
        y = torch.randint(0, model_info(model).num_classes, (batch,))
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

        def step():
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step
    if framework == "onnxruntime":
        import numpy as np
        import onnxruntime as ort

        from nnscale.measure.backends.onnxruntime import export_onnx
        from nnscale.records import Workload

        path = f"/tmp/nnscale-bench-{os.getpid()}.onnx"
        export_onnx(Workload(model, mode, batch, (c, h, w)), path)
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        os.unlink(path)
        x = np.random.default_rng(0).standard_normal((batch, c, h, w), dtype=np.float32)
        # Inputs live on the device in every framework's step (torch tensors, TF/JAX arrays):
        # ORT's way to say so is I/O binding, bound once (onnxruntime.ai/docs/api/python,
        # "IOBinding"); `sess.run(feed)` would copy the input in and the output out each step.
        binding = sess.io_binding()
        binding.bind_ortvalue_input(sess.get_inputs()[0].name, ort.OrtValue.ortvalue_from_numpy(x))
        for out in sess.get_outputs():
            binding.bind_output(out.name)
        return lambda: sess.run_with_iobinding(binding)
    if framework == "jax":
        flags = f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
        os.environ["XLA_FLAGS"] = f"{flags} intra_op_parallelism_threads={threads}"
        os.environ["JAX_PLATFORMS"] = "cpu"
    keras = _keras(framework)
    if framework == "tensorflow":
        import tensorflow as tf

        # before anything starts TensorFlow's runtime (it refuses afterwards)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from nnscale.kerasnets import create_keras_model

    keras.utils.set_random_seed(0)
    net = create_keras_model(model)
    classes = int(net.outputs[0].shape[-1])
    xs = keras.random.normal((batch, h, w, c), seed=0)
    ys = keras.random.randint((batch,), 0, classes, seed=1)
    opt = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)

    def loss_of(out, y):
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, out, from_logits=True))

    if framework == "tensorflow":
        if mode == "inference":
            f = tf.function(lambda x: net(x, training=False), jit_compile=xla)
            return lambda: f(xs).numpy()

        @tf.function(jit_compile=xla)
        def train(x, y):
            with tf.GradientTape() as tape:
                loss = loss_of(net(x, training=True), y)
            opt.apply(tape.gradient(loss, net.trainable_variables), net.trainable_variables)
            return loss
        return lambda: train(xs, ys).numpy()
    import jax

    tv = [v.value for v in net.trainable_variables]
    ntv = [v.value for v in net.non_trainable_variables]
    if mode == "inference":
        f = jax.jit(lambda tv, ntv, x: net.stateless_call(tv, ntv, x, training=False)[0])
        return lambda: jax.block_until_ready(f(tv, ntv, xs))
    opt.build(net.trainable_variables)
    state = [tv, ntv, [v.value for v in opt.variables]]

    def loss_fn(tv, ntv, x, y):
        out, ntv = net.stateless_call(tv, ntv, x, training=True)
        return loss_of(out, y), ntv

    def train(tv, ntv, ov, x, y):
        (loss, ntv), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv, ntv, x, y)
        tv, ov = opt.stateless_apply(ov, grads, tv)
        return loss, tv, ntv, ov

    jitted = jax.jit(train, donate_argnums=(0, 1, 2))

    def step():
        _loss, *state[:] = jax.block_until_ready(jitted(*state, xs, ys))
    return step


def native_main(args) -> None:
    """B: warm up, then time `iters` steps as one block; print one JSON line."""
    step = native_step(args.native, args.model, args.mode, args.batch, args.threads, args.xla)
    for _ in range(args.warmup_iters + 1):  # + the first call (compilation), as A times apart
        step()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    elapsed = time.perf_counter() - start
    print(json.dumps({"samples_per_s": args.iters * args.batch / elapsed}))


def inproc_main(args) -> None:
    """In one fresh process for the framework (the harness's own cost, process-to-process variance
    cancelled): A = `measure()` timing the step the nnscale backend builds, every iteration timed,
    throughput from the median; B = `native_step` on a second model of the same framework, timed as
    one block. Blocks of ~`--block` seconds alternate A B, B A, ...; one JSON line of ratios."""
    from nnscale.measure.backends.base import get_backend
    from nnscale.measure.methodology import MeasurePolicy, measure
    from nnscale.measure.runner import worker_env
    from nnscale.records import Workload
    from nnscale.zoo.registry import model_info

    os.environ.update(worker_env(args.threads, {"TF_CPP_MIN_LOG_LEVEL": "2"}))
    w = Workload(args.model, args.mode, args.batch, model_info(args.model).input_shape,
                 threads=args.threads, framework=args.inproc,
                 compile=args.xla or args.inproc == "jax")
    # Which model is built first matters by itself (a torch training step of the model built
    # first ran 19 % slower here, timed the same way — memory placement, not the harness), so the
    # caller runs both orders and takes the geometric mean of the two medians.
    if args.first == "A":
        prepared = get_backend(args.inproc).prepare(w)
        native = native_step(args.inproc, args.model, args.mode, args.batch, args.threads, args.xla)
    else:
        native = native_step(args.inproc, args.model, args.mode, args.batch, args.threads, args.xla)
        prepared = get_backend(args.inproc).prepare(w)
    for _ in range(3):  # both compiled and warm
        prepared.step()
        native()
    policy = MeasurePolicy(target_rel_ci=1e-9, budget_s=args.block, warmup_max_iters=0, min_iters=2)
    ratios, mean_ratios = [], []
    for k in range(args.blocks):
        for side in ("AB" if k % 2 == 0 else "BA"):
            if side == "A":
                timed = measure(prepared.step, prepared.timer, policy)
                n = len(timed.samples_ms)
                a_median = args.batch * 1e3 / statistics.median(timed.samples_ms)
                a_mean = args.batch * 1e3 / statistics.fmean(timed.samples_ms)
            else:  # the first pair is A B, so n (A's iteration count) is known here
                start = time.perf_counter()
                for _ in range(n):
                    native()
                b = n * args.batch / (time.perf_counter() - start)
        ratios.append(a_median / b)
        mean_ratios.append(a_mean / b)
    print(json.dumps({"ratios": ratios, "mean_ratios": mean_ratios, "b_samples_per_s": b}))


def same_timing_main(args) -> None:
    """A cross-check of the in-process level: the backend's step and the native step timed the same
    way (alternating blocks of `--calls` calls, each call timed, as a block and by its median), so a
    difference between A and B is the steps', not the two timing methods'."""
    from nnscale.measure.backends.base import get_backend
    from nnscale.records import Workload
    from nnscale.zoo.registry import (
        model_info,  # torchvision before TensorFlow (kerasnets' conftest)
    )

    w = Workload(args.model, args.mode, args.batch, model_info(args.model).input_shape,
                 threads=args.threads, framework=args.same_timing,
                 compile=args.xla or args.same_timing == "jax")
    steps = {}
    for side in (args.first + ("B" if args.first == "A" else "A")):  # build order: --first
        steps[side] = (get_backend(args.same_timing).prepare(w).step if side == "A" else
                       native_step(args.same_timing, args.model, args.mode, args.batch, args.threads,
                                   args.xla))
    for _ in range(5):
        steps["A"](), steps["B"]()
    block = {"A": [], "B": []}
    median = {"A": [], "B": []}
    for r in range(args.blocks):
        for side in ("AB" if r % 2 == 0 else "BA"):
            calls_ns = []
            start = time.perf_counter()
            for _ in range(args.calls):
                t = time.perf_counter_ns()
                steps[side]()
                calls_ns.append(time.perf_counter_ns() - t)
            block[side].append(args.calls * args.batch / (time.perf_counter() - start))
            median[side].append(args.batch * 1e9 / statistics.median(calls_ns))
    print(f"{args.same_timing} {args.mode}: same timing for both, {args.first} built first, "
          f"{args.blocks} blocks of {args.calls} "
          f"calls: A/B block {statistics.median(block['A']) / statistics.median(block['B']):.3f}, "
          f"median {statistics.median(median['A']) / statistics.median(median['B']):.3f}")


def inproc(framework, model, mode, batch, threads, xla, blocks, block_s, first) -> dict:
    cmd = [sys.executable, __file__, "--inproc", framework, "--model", model, "--mode", mode,
           "--batch", str(batch), "--threads", str(threads), "--blocks", str(blocks),
           "--block", str(block_s), "--first", first] + (["--xla"] if xla else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0:
        raise SystemExit(f"in-process {framework} {mode} failed: {out.stderr.strip().splitlines()[-3:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def point(framework, model, mode, batch, threads, xla, policy):
    from nnscale.measure.runner import PointSpec, run_point
    from nnscale.records import Workload
    from nnscale.zoo import model_info

    w = Workload(model, mode, batch, model_info(model).input_shape, threads=threads,
                 framework=framework, compile=xla or framework == "jax")
    m = run_point(PointSpec(w, policy, timeout_s=900))
    if m.status not in ("ok", "unstable"):
        raise SystemExit(f"{framework} {mode}: {m.status}: {m.error}")
    return m


def native(framework, model, mode, batch, threads, xla, warmup_iters, iters) -> float:
    from nnscale.measure.runner import worker_env

    cmd = [sys.executable, __file__, "--native", framework, "--model", model, "--mode", mode,
           "--batch", str(batch), "--threads", str(threads), "--warmup-iters", str(warmup_iters),
           "--iters", str(iters)] + (["--xla"] if xla else [])
    env = worker_env(threads, {"TF_CPP_MIN_LOG_LEVEL": "2"})
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    if out.returncode != 0:
        raise SystemExit(f"native {framework} {mode} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["samples_per_s"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tf-mnist-convnet")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--mode", default="both", choices=("inference", "training", "both"))
    p.add_argument("--frameworks", default="torch,tensorflow,jax,onnxruntime")
    p.add_argument("--xla", action="store_true", help="tensorflow with jit_compile=True")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--budget", type=float, default=10.0, help="A's measurement budget per point (s)")
    p.add_argument("--blocks", type=int, default=8, help="in-process A/B block pairs (0: skip)")
    p.add_argument("--block", type=float, default=4.0, help="seconds per in-process block")
    p.add_argument("--inproc", help=argparse.SUPPRESS)
    p.add_argument("--same-timing", metavar="FRAMEWORK",
                   help="cross-check: time the backend's and the native step the same way")
    p.add_argument("--calls", type=int, default=200, help="calls per block for --same-timing")
    p.add_argument("--first", default="A", choices=("A", "B"), help=argparse.SUPPRESS)
    p.add_argument("--native", help=argparse.SUPPRESS)
    p.add_argument("--warmup-iters", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--iters", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.native:
        native_main(args)
        return
    if args.inproc:
        inproc_main(args)
        return
    if args.same_timing:
        same_timing_main(args)
        return
    from nnscale.measure.frameworks import SPECS
    from nnscale.measure.methodology import MeasurePolicy

    policy = MeasurePolicy(budget_s=args.budget, warmup_max_s=min(10.0, args.budget))
    modes = ("inference", "training") if args.mode == "both" else (args.mode,)
    print(f"{args.model} bs {args.batch}, {args.threads} threads, {args.rounds} rounds, A budget "
          f"{args.budget:g} s; ratio = A (nnscale point, median) / B (native loop, block)")
    for fw in args.frameworks.split(","):
        if any(importlib.util.find_spec(m) is None for m in SPECS[fw].modules):
            print(f"{fw}: not installed, skipped")
            continue
        for mode in modes:
            if mode not in SPECS[fw].modes:
                continue
            xla = args.xla and fw == "tensorflow"
            label = f"{fw}{' xla' if xla else ''} {mode}"
            if args.blocks:
                med, mean_med, lo, hi = {}, {}, [], []
                for first in ("A", "B"):
                    got = inproc(fw, args.model, mode, args.batch, args.threads, xla, args.blocks,
                                 args.block, first)
                    med[first] = statistics.median(got["ratios"])
                    mean_med[first] = statistics.median(got["mean_ratios"])
                    lo.append(min(got["ratios"]))
                    hi.append(max(got["ratios"]))
                print(f"{label:28s} in-process, {args.blocks} A/B block pairs of ~{args.block:g} s, "
                      f"each build order: ratio {math.sqrt(med['A'] * med['B']):.3f} (A built first "
                      f"{med['A']:.3f}, B first {med['B']:.3f}; mean-based "
                      f"{math.sqrt(mean_med['A'] * mean_med['B']):.3f}; pairs {min(lo):.3f}.."
                      f"{max(hi):.3f})", flush=True)
            if not args.rounds:
                continue
            ratios, mean_ratios, a_rates, b_rates = [], [], [], []
            for r in range(args.rounds):
                order = ("A", "B") if r % 2 == 0 else ("B", "A")
                got = {}
                for which in order:
                    if which == "A":
                        got["A"] = point(fw, args.model, mode, args.batch, args.threads, xla, policy)
                    else:
                        a = got.get("A")  # B reuses A's counts when A came first, else a fixed guess
                        warm = a.stats.timing.warmup_iters if a else 20
                        iters = a.stats.timing.iterations if a else 50
                        got["B"] = native(fw, args.model, mode, args.batch, args.threads, xla, warm, iters)
                a_rate = got["A"].stats.throughput.samples_per_s
                a_rates.append(a_rate)
                b_rates.append(got["B"])
                ratios.append(a_rate / got["B"])
                # like for like with B's block timing: batch / mean step time
                a_mean = args.batch * 1e3 / statistics.fmean(got["A"].samples_ms)
                mean_ratios.append(a_mean / got["B"])
            print(f"{label:28s} end-to-end A {statistics.median(a_rates):10.1f}/s  B {statistics.median(b_rates):10.1f}/s"
                  f"  ratio median {statistics.median(ratios):.3f} (mean-based "
                  f"{statistics.median(mean_ratios):.3f}; rounds: "
                  f"{', '.join(f'{x:.3f}' for x in ratios)})", flush=True)


if __name__ == "__main__":
    main()
