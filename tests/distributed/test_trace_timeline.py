"""`step_timeline`: a Chrome trace reduced to one step's phases (pure JSON, no profiler run)."""

from __future__ import annotations

from nnscale.distributed.trace import MAX_EVENTS, step_timeline

MAIN, GLOO = 11, 12


def ev(name, ts, dur, tid=MAIN):
    return {"ph": "X", "name": name, "ts": ts, "dur": dur, "tid": tid, "pid": 1}


def trace(extra=()):
    back = "autograd::engine::evaluate_function: "
    return {"traceEvents": [
        ev("nnscale.step.0", 0, 900), ev("DistributedDataParallel.forward", 10, 100),  # step 0
        ev("nnscale.step.1", 1000, 1000),
        ev("DistributedDataParallel.forward", 1010, 300),
        ev(back + "AddmmBackward0", 1320, 100),
        ev(back + "torch::autograd::AccumulateGrad", 1330, 10),  # nested in Addmm: dropped
        ev(back + "ConvolutionBackward0", 1430, 400),
        ev(back + "ConvolutionBackward0", 1500, 50, tid=GLOO),  # another thread: not compute
        ev("gloo:all_reduce", 1840, 120, tid=GLOO),
        ev("Optimizer.step#SGD.step", 1965, 30),
        ev("aten::mm", 1325, 50),  # not a phase
        *extra]}


def test_the_last_step_in_order_with_lanes_in_ms():
    t = step_timeline(trace())
    assert t["step_ms"] == 1.0
    got = [(e["kind"], e["name"], round(e["start_ms"], 3), round(e["dur_ms"], 3), e["lane"])
           for e in t["events"]]
    assert got == [("forward", "DistributedDataParallel.forward", 0.01, 0.3, "compute"),
                   ("backward", "AddmmBackward0", 0.32, 0.1, "compute"),
                   ("backward", "ConvolutionBackward0", 0.43, 0.4, "compute"),
                   ("allreduce", "gloo:all_reduce", 0.84, 0.12, "comm"),
                   ("optimizer", "Optimizer.step#SGD.step", 0.965, 0.03, "compute")]


def test_no_marked_step_is_none_and_a_deep_backward_is_merged():
    assert step_timeline({"traceEvents": [ev("DistributedDataParallel.forward", 0, 1)]}) is None
    many = [ev("autograd::engine::evaluate_function: ReluBackward0", 2000 + 2 * i, 1)
            for i in range(3 * MAX_EVENTS)]
    big = trace(many)
    big["traceEvents"][2]["dur"] = 5000  # the step window covers them
    t = step_timeline(big)
    backs = [e for e in t["events"] if e["kind"] == "backward"]
    assert len(backs) <= MAX_EVENTS and "ops)" in backs[-1]["name"]
    assert sum(e["kind"] == "allreduce" for e in t["events"]) == 1
