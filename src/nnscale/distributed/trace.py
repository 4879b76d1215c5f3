"""One training step of a measured data-parallel point, recorded with `torch.profiler`.

After a point is measured, every rank runs `TRACE_STEPS` more steps under the profiler (all ranks,
so that the collectives match); rank 0 exports the trace as Chrome trace JSON (open it in Perfetto,
ui.perfetto.dev, or chrome://tracing) and `step_timeline` reduces its last step to the phases the
report draws. The steps are not the measured ones: the profiler's own cost (a few microseconds per
recorded op) would bias the timings, so the trace shows where time goes, the measurement how much.

What the events are (torch 2.x names; PyTorch's profiler recipe, pytorch.org/tutorials/recipes/
recipes/profiler_recipe.html, and the events DDP and the optimizers record themselves):
- forward: `DistributedDataParallel.forward` (DDP's own record_function), the loss up to backward;
- backward, by layer: each `autograd::engine::evaluate_function: <Op>Backward0` on the main thread,
  in the order the autograd engine ran them (the last layer first); AccumulateGrad nodes are where
  a parameter's gradient lands and DDP's reducer marks it ready, so they count as backward too;
- all-reduce: `gloo:all_reduce` on gloo's worker thread (CPU), NCCL's `ncclDevKernel_AllReduce*`
  kernels on the GPU (CUDA), one per bucket;
- optimizer: `Optimizer.step#SGD.step` and `Optimizer.zero_grad#SGD.zero_grad`.
Times in the timeline are milliseconds from the start of the step.
"""

from __future__ import annotations

import json
from pathlib import Path

TRACE_STEPS = 2  # the first warms the profiler's buffers; the last one is drawn
STEP_MARK = "nnscale.step."
MAX_EVENTS = 400  # a timeline of more backward ops is merged into this many (ResNet-152 has ~900)
_BACKWARD = "autograd::engine::evaluate_function: "
_OPTIMIZER = ("Optimizer.step#", "Optimizer.zero_grad#")


def record_step_trace(trainer, device, path: Path | None) -> None:
    """Run TRACE_STEPS steps of `trainer` under torch.profiler; export the trace to `path` (only
    the rank given a path writes; every rank must call this, the steps hold collectives)."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for i in range(TRACE_STEPS):
            with record_function(f"{STEP_MARK}{i}"):
                trainer.step()
                if device.type == "cuda":  # the step's window covers its kernels
                    torch.cuda.synchronize(device)
    trainer.take_rows()  # the traced steps' breakdown rows are not measurements: drop them
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        prof.export_chrome_trace(str(tmp))
        tmp.replace(path)


def _kind(name: str) -> str | None:
    if name == "DistributedDataParallel.forward":
        return "forward"
    if name.startswith(_BACKWARD):
        return "backward"
    if name == "gloo:all_reduce" or name.startswith("ncclDevKernel_AllReduce") or \
            name.startswith("ncclKernel_AllReduce"):
        return "allreduce"
    if name.startswith(_OPTIMIZER):
        return "optimizer"
    return None


def _merge(events: list[dict], most: int) -> list[dict]:
    """At most `most` backward events: neighbours merged, so a deep network stays drawable."""
    back = [e for e in events if e["kind"] == "backward"]
    if len(back) <= most:
        return events
    group = -(-len(back) // most)
    merged = []
    for i in range(0, len(back), group):
        part = back[i:i + group]
        end = max(e["start_ms"] + e["dur_ms"] for e in part)
        merged.append({"kind": "backward", "name": f"{part[0]['name']} .. ({len(part)} ops)",
                       "start_ms": part[0]["start_ms"], "dur_ms": end - part[0]["start_ms"],
                       "lane": "compute"})
    return sorted([e for e in events if e["kind"] != "backward"] + merged, key=lambda e: e["start_ms"])


def step_timeline(trace: dict) -> dict | None:
    """The last traced step's phases from a Chrome trace (`record_step_trace`'s file, parsed):
    {"step_ms", "events": [{kind, name, start_ms, dur_ms, lane}]}, or None if no step is marked.
    Backward events nested in another backward event (the engine runs some inline) are dropped,
    so each layer is counted once."""
    events = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X" and "dur" in e]
    steps = sorted((e for e in events if str(e.get("name", "")).startswith(STEP_MARK)),
                   key=lambda e: e["ts"])
    if not steps:
        return None
    step = steps[-1]
    t0, t1, main = step["ts"], step["ts"] + step["dur"], step.get("tid")
    out, last_back_end = [], -1.0
    for e in sorted(events, key=lambda e: e["ts"]):
        kind = _kind(str(e.get("name", "")))
        if kind is None or not (t0 <= e["ts"] <= t1):
            continue
        if kind in ("forward", "backward", "optimizer") and e.get("tid") != main:
            continue  # the compute lane is the step's own thread
        if kind == "backward":
            if e["ts"] < last_back_end:  # nested in the previous backward event
                continue
            last_back_end = e["ts"] + e["dur"]
        name = str(e["name"]).removeprefix(_BACKWARD).removeprefix("torch::autograd::")
        out.append({"kind": kind, "name": name, "start_ms": (e["ts"] - t0) / 1e3,
                    "dur_ms": e["dur"] / 1e3, "lane": "comm" if kind == "allreduce" else "compute"})
    return {"step_ms": step["dur"] / 1e3, "events": _merge(out, MAX_EVENTS)}


def read_timeline(path: Path) -> dict | None:
    """step_timeline of the trace file at `path`; None if it is missing or not a trace."""
    try:
        return step_timeline(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
