"""The program torchrun starts on every rank: `python -m nnscale.distributed.worker JOB.json`.

The parent (`launch.launch`) writes JOB.json into a fresh directory and reads back from it:
- `rank<R>.state.json`: the rank's pid, host and current phase (init, memory, warmup+measure,
  breakdown, trace, gather, done), rewritten at each phase change, so a timeout can say where each
  rank was;
- `rank<R>.error.json`: written by a rank that raised: its type, message and traceback tail;
- `result.json`: rank 0's result, broadcast to every rank and written by each node's local rank 0,
  so that the parent on every node has it (only one stores it).
Ranks talk to each other only through torch.distributed: the default group (gloo on CPU, NCCL on
GPU) for the work itself, a gloo group for control (stop decisions, gathering per-rank results).

Test hook: NNSCALE_TEST_FAULT="raise:R[:I]" makes rank R raise at its I-th measured step (default 3),
"hang:R[:I]" makes it sleep there forever, ignoring SIGTERM (as a rank stuck in native code would),
"oom:R[:I]" makes it allocate 1 PiB there (a real allocator failure, stored as "oom").
Used by tests/distributed/test_faults.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path

FAULT_ENV = "NNSCALE_TEST_FAULT"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # atomic: the parent never reads a half-written file


class _State:
    def __init__(self, workdir: Path, rank: int):
        self.path = workdir / f"rank{rank}.state.json"
        self.base = {"rank": rank, "pid": os.getpid(), "host": socket.gethostname()}

    def phase(self, name: str) -> None:
        _write_json(self.path, {**self.base, "phase": name, "time": time.time()})


def _fault(rank: int):
    """The injected fault for this rank, as (kind, iteration), or None."""
    spec = os.environ.get(FAULT_ENV, "")
    parts = spec.split(":")
    if len(parts) < 2 or parts[0] not in ("raise", "hang", "oom") or int(parts[1]) != rank:
        return None
    return parts[0], int(parts[2]) if len(parts) > 2 else 3


def _with_fault(step, fault):
    if fault is None:
        return step
    count = 0

    def faulty():
        nonlocal count
        count += 1
        if count == fault[1]:
            if fault[0] == "raise":
                raise RuntimeError(f"injected fault ({FAULT_ENV})")
            if fault[0] == "oom":
                import torch

                torch.empty(1 << 50, dtype=torch.uint8)  # DefaultCPUAllocator: can't allocate
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(10**6)
        return step()

    return faulty


def _setup_device(job: dict, local_rank: int):
    import torch

    if job["device"] == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    threads = job["threads"]
    torch.set_num_threads(threads)
    cpus = job.get("cpus")
    if cpus:  # the node's cores split evenly: local rank r gets cores [r·t, (r+1)·t)
        os.sched_setaffinity(0, cpus[local_rank * threads:(local_rank + 1) * threads])
    return torch.device("cpu")


def _resources(device, job: dict) -> dict:
    """What this rank really runs on, read in the rank itself after setup (recorded per point)."""
    import torch

    if device.type == "cuda":
        return {"threads": torch.get_num_threads(), "cpus": None, "gpu": torch.cuda.get_device_name(device)}
    return {"threads": torch.get_num_threads(), "cpus": sorted(os.sched_getaffinity(0)),
            "pinned": bool(job.get("cpus"))}


def _trainer(step_opts, ctx: dict, inline: bool, independent: bool = False):
    """The strategy's trainer, instrumented (FSDP always: its timed collectives are a Python call
    per collective, not per gradient bucket); and the DDP logging function, or None.
    `independent` (a loaded reference): every rank's DDP runs in a group of its rank alone, so the
    ranks compute side by side as N copies of the one-worker step and never exchange a gradient."""
    import torch.distributed as dist

    from nnscale.distributed.ddp_step import Clock, CommRecorder, DDPTrainer, ddp_logging

    if step_opts.strategy == "fsdp":
        from nnscale.distributed.fsdp_step import FSDPTrainer

        return FSDPTrainer(step_opts, ctx["device"], seed=1000 + ctx["rank"]), None
    # new_subgroups is collective: every rank creates every one-rank group, and gets its own.
    group = dist.new_subgroups(group_size=1)[0] if independent else None
    trainer = DDPTrainer(step_opts, ctx["device"], seed=1000 + ctx["rank"], process_group=group)
    trainer.wrap(CommRecorder(Clock(ctx["device"]), step_opts.comm_hook) if inline else None)
    return trainer, lambda: ddp_logging(trainer.ddp)


def _scale(job: dict, ctx: dict, state: _State) -> dict:
    import torch.distributed as dist

    from nnscale.distributed.ddp_step import (Clock, CommRecorder, FlushingTimer, LockstepTimer,
                                              collective_flag, step_timer)
    from nnscale.distributed.memory import RankMemory
    from nnscale.distributed.metrics import (BREAKDOWN_PARTS, BREAKDOWN_SAMPLE_KEYS,
                                             summarize_breakdown)
    from nnscale.distributed.train_state import StepOptions
    from nnscale.measure.methodology import MeasurePolicy, measure

    step_opts = StepOptions(**dict(job["step"], input_shape=tuple(job["step"]["input_shape"])))
    memory = RankMemory(ctx["device"], step_opts.model)  # before the model exists: the bare worker
    inline = job["breakdown"] == "inline"
    trainer, logged = _trainer(step_opts, ctx, inline, bool(job.get("independent")))
    state.phase("memory")  # a pass of its own, before the timed steps (nnscale.distributed.memory)
    mem = memory.measure(trainer)
    state.phase("warmup+measure")
    policy = MeasurePolicy.from_dict(job["policy"])
    step = _with_fault(trainer.step, _fault(ctx["rank"]))
    timer = FlushingTimer(step_timer(ctx["device"]), trainer)
    if job.get("independent"):  # a loaded reference's copies: each step started together
        timer = LockstepTimer(timer, ctx["ctrl"])
    timed = measure(step, timer, policy, agree=collective_flag(ctx["ctrl"]))
    mem.update(memory.timed_peak(), **trainer.state.state_bytes())
    logging = logged() if logged else {}
    if inline or step_opts.strategy == "fsdp":  # every step was instrumented: the measured ones
        iterations = trainer.take_rows()[-len(timed.samples_ms):]
    else:
        state.phase("breakdown")
        trainer.wrap(CommRecorder(Clock(ctx["device"]), trainer.opts.comm_hook))
        # DDP rebuilds its buckets after the first iteration: 3 warm-up steps. The same count on
        # every rank (the sample count is agreed), or the collectives would deadlock.
        for _ in range(3 + min(job["breakdown_iters"], max(3, len(timed.samples_ms)))):
            trainer.step()
            trainer.flush()
        iterations = trainer.take_rows()[3:]
    parts = summarize_breakdown(iterations)
    traced = {}
    if job.get("trace"):  # one step under torch.profiler, after the measured ones (trace.py)
        from nnscale.distributed.trace import read_timeline, record_step_trace

        state.phase("trace")
        # Written by local rank 0 of the storing node (the only one given a path); with c10d's
        # rendezvous that need not be global rank 0, so the timeline travels in the gather.
        path = (Path(job["trace_path"]) if job.get("trace_path") and os.environ["LOCAL_RANK"] == "0"
                else None)
        record_step_trace(trainer, ctx["device"], path)
        timeline = read_timeline(path) if path is not None else None
        if timeline is not None:
            traced = {"trace_file": str(path), "step_timeline": timeline}

    state.phase("gather")
    samples = sorted(timed.samples_ms)
    mine = {"rank": ctx["rank"], "host": socket.gethostname(), "step_ms": samples[len(samples) // 2],
            "breakdown": parts, "memory": mem,
            "compute_ms": sum(parts[k] for k in BREAKDOWN_PARTS if k != "comm_exposed_ms"),
            **_resources(ctx["device"], job), **traced}
    everyone = [None] * ctx["world_size"]
    dist.all_gather_object(everyone, mine, group=ctx["ctrl"])
    traced = next(({k: r.pop(k) for k in ("trace_file", "step_timeline")} for r in everyone
                   if r.get("step_timeline")), {})
    return {
        "samples_ms": list(timed.samples_ms),
        "stable": timed.stable,
        "warmup_iters": timed.warmup_iters,
        "warmup_s": timed.warmup_s,
        "measure_s": timed.measure_s,
        "summary": timed.summary.to_dict(),
        "strategy": step_opts.strategy,
        "breakdown": parts,
        "breakdown_mode": "inline" if step_opts.strategy == "fsdp" else job["breakdown"],
        "breakdown_iters": len(iterations),
        # Rank 0's per-iteration parts, at most the last 1000 (they show the spread).
        "breakdown_samples": [[round(it[k], 4) for k in BREAKDOWN_SAMPLE_KEYS]
                              for it in iterations[-1000:]],
        "per_rank": everyone,
        "memory": mem,
        "ddp_logging": logging,
        "trace_file": traced.get("trace_file"),
        "step_timeline": traced.get("step_timeline"),
        "fsdp_layout": getattr(trainer, "layout", None),
        "exposed_measured": not (step_opts.strategy == "fsdp" and ctx["device"].type == "cuda"),
    }


def _allreduce(job: dict, ctx: dict, state: _State) -> dict:
    from nnscale.distributed.allreduce import allreduce_sizes
    from nnscale.measure.methodology import MeasurePolicy

    state.phase("allreduce")
    policy = MeasurePolicy.from_dict(job["policy"])
    return {"sizes": allreduce_sizes(job["sizes"], job["dtype"], ctx["device"], policy, ctx["ctrl"],
                                     ctx["world_size"], job.get("compute_before_ms", 0.0))}


def run(job_path: Path) -> int:
    from nnscale.lifeline import die_with_parent, watch_parent

    # Die with torchrun (PR_SET_PDEATHSIG) and with the nnscale that launched it (parent watch),
    # so that no rank outlives a killed launch (see lifeline).
    die_with_parent()
    watch_parent()
    workdir = job_path.parent
    rank = int(os.environ["RANK"])
    state = _State(workdir, rank)
    state.phase("init")
    try:
        import torch
        import torch.distributed as dist

        job = json.loads(job_path.read_text())
        local_rank = int(os.environ["LOCAL_RANK"])
        device = _setup_device(job, local_rank)
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = timedelta(seconds=job["timeout_s"])
        dist.init_process_group(backend, timeout=timeout)
        ctrl = dist.new_group(backend="gloo", timeout=timeout)
        ctx = {"rank": rank, "world_size": dist.get_world_size(), "device": device, "ctrl": ctrl,
               "backend": backend}
        result = (_scale if job["kind"] == "scale" else _allreduce)(job, ctx, state)
        if rank == 0:
            result.update(backend=backend, world_size=ctx["world_size"], torch=torch.__version__,
                          local_world_size=int(os.environ["LOCAL_WORLD_SIZE"]),
                          nnodes=ctx["world_size"] // int(os.environ["LOCAL_WORLD_SIZE"]))
        box = [result if rank == 0 else None]
        dist.broadcast_object_list(box, src=0, group=ctrl)
        if local_rank == 0:
            _write_json(workdir / "result.json", box[0])
        dist.barrier(group=ctrl)  # nobody leaves while another rank still receives the result
        state.phase("done")
        # Leave without tearing the process groups down: at interpreter exit gloo can abort
        # ("terminate called without an active exception") once its peers are gone, turning a
        # finished measurement into a failed launch. The result is written; the OS frees the rest.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - every failure must reach the parent, named
        text = str(e).strip().splitlines()
        _write_json(workdir / f"rank{rank}.error.json", {
            "rank": rank, "host": socket.gethostname(), "time": time.time(),
            "type": type(e).__name__, "message": text[0] if text else "",
            "traceback": traceback.format_exc()[-4000:],
        })
        traceback.print_exc()
        sys.stderr.flush()
        # No clean-up: a rank whose peers are gone can block forever in destroy_process_group.
        os._exit(1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m nnscale.distributed.worker JOB.json (started by nnscale via torchrun)")
    sys.exit(run(Path(sys.argv[1])))
