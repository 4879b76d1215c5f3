"""One data-parallel training step (DistributedDataParallel), instrumented for the breakdown.

The step is the one a training loop runs: forward, cross-entropy loss, backward (during which DDP
all-reduces gradient buckets, overlapping communication with the rest of backward), SGD with
momentum, zero_grad — the single-device engine's step (nnscale.measure.backends.torch: optimizer,
mixed precision, TF32 and cuDNN settings), wrapped in DDP. Buckets: gradients are packed into
buckets of `bucket_cap_mb` in reverse parameter order, and a bucket is all-reduced as soon as all
its gradients exist (Li et al., "PyTorch Distributed: Experiences on Accelerating Data Parallel
Training", VLDB 2020, §3.2.3 and §4.2).

Breakdown (docs/distributed.md has the full method). The DDP wrapper carries a communication hook
(`DDP.register_comm_hook`) that wraps the selected all-reduce and marks, per bucket, when DDP
handed it over (the bucket is ready) and when its future completed (a `torch.futures.Future.then`
callback). With marks at the phase boundaries of the step:

    forward      = loss computed − step start
    comm total   = length of the union of the buckets' [ready, done] intervals
    exposed comm = time from the last bucket becoming ready (all gradients computed) to the last
                   bucket's all-reduce completing, capped by the end of backward
    backward     = (backward returned − loss computed) − exposed comm
    optimizer    = optimizer step + zero_grad
    overlapped   = comm total − exposed comm

so forward + backward + exposed + optimizer is the step's time exactly. On CPU the marks are
perf_counter readings; on CUDA they are events recorded on the current stream (inside the `then`
callback the current stream is one that waits for the reduced bucket), read once the timer has
synchronized after the step, so GPU time and not host enqueue time is measured.

Inline (default): the measured steps themselves carry the marks, so the breakdown describes exactly
the iterations whose times are reported; the cost is DDP calling a Python hook per bucket instead
of its built-in C++ all-reduce (bench/ddp_overhead.py). Separate: the measured steps run plain DDP
and a second wrapper with the hook runs a short instrumented pass afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel as DDP

from nnscale.measure.methodology import CpuTimer
from nnscale.distributed.train_state import Clock, StepOptions, TrainState
from nnscale.measure.backends.torch import CudaTimer

__all__ = ["Clock", "CommRecorder", "DDPTrainer", "StepOptions"]  # Clock, StepOptions: train_state
_HOOKS = {"fp16": default_hooks.fp16_compress_hook, "bf16": default_hooks.bf16_compress_hook}
_WIRE_BYTES = {"none": None, "fp16": 2, "bf16": 2}  # bytes per element on the wire, None: as stored


class CommRecorder:
    """A DDP comm hook wrapping the selected all-reduce; records each bucket's [ready, done] marks."""

    def __init__(self, clock: Clock, comm_hook: str):
        self.clock = clock
        self.inner = _HOOKS.get(comm_hook, default_hooks.allreduce_hook)
        self.wire_bytes = _WIRE_BYTES[comm_hook]
        self.buckets: list[list] = []  # this step's [ready mark, done mark or None, bytes]
        # DDP names the hook in its logs and checks for the bf16 hook by name.
        self.__name__ = self.__qualname__ = f"nnscale_timed_{self.inner.__name__}"

    def __call__(self, process_group, bucket):
        buffer = bucket.buffer()
        size = self.wire_bytes if self.wire_bytes is not None else buffer.element_size()
        record = [self.clock.mark(), None, buffer.numel() * size]
        self.buckets.append(record)
        fut = self.inner(process_group, bucket)

        def done(f):
            record[1] = self.clock.mark()
            return f.value()

        return fut.then(done)


class DDPTrainer:
    """A rank's `TrainState` and its DDP wrapper."""

    def __init__(self, opts: StepOptions, device: torch.device, seed: int, process_group=None):
        self.opts, self.device = opts, device
        # None: the default group (every rank); a loaded reference's copies each pass a group of
        # their own rank only, so that DDP's hooks run as at world size 1 (worker._scale).
        self.process_group = process_group
        self.state = TrainState(opts, device, seed)  # model, batch, precision: as FSDP's
        self.module = self.state.module
        self.state.make_optimizer()  # DDP keeps the module's own parameters
        self.optimizer = self.state.optimizer
        self.ddp: DDP | None = None
        self.recorder: CommRecorder | None = None
        self.rows: list[dict[str, float]] = []  # one breakdown per instrumented step, in order
        self._pending: tuple | None = None

    def wrap(self, recorder: CommRecorder | None = None) -> None:
        """(Re)wrap the module in DDP, with `recorder` as its comm hook if given (every step is then
        instrumented). A previous wrapper is dropped first: its reducer removes its autograd hooks
        when destroyed, so the two never both fire."""
        self.ddp = None
        gc.collect()
        o = self.opts
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DDP(self.module, device_ids=ids, process_group=self.process_group,
                       bucket_cap_mb=o.bucket_mb,
                       gradient_as_bucket_view=o.grad_as_bucket_view, static_graph=o.static_graph)
        self.recorder = recorder
        if recorder is not None:
            self.ddp.register_comm_hook(None, recorder)
        elif o.comm_hook != "none":
            self.ddp.register_comm_hook(None, _HOOKS[o.comm_hook])

    def step(self) -> None:
        """One training step. With a recorder, its phase marks are left pending for `flush`, which
        the caller runs outside the timed region (`FlushingTimer`)."""
        rec = self.recorder
        if rec is None:
            self.state.backward_and_update(self.state.loss(self.ddp), None, None)
            return
        rec.buckets = []
        clock = rec.clock
        marks = [clock.mark()]
        loss = self.state.loss(self.ddp)
        marks.append(clock.mark())
        self.state.backward_and_update(loss, marks, clock)
        marks.append(clock.mark())
        self._pending = (marks, rec.buckets)

    def flush(self) -> None:
        """Turn the last step's marks into its breakdown row. On CUDA this waits for the step's
        events, so call it between timed steps, never inside one."""
        if self._pending is None:
            return
        (t0, *rest), buckets = self._pending
        self._pending = None
        clock = self.recorder.clock
        clock.wait(rest[-1], *(done for _, done, _ in buckets if done is not None))
        fwd_end, bwd_end, opt_end = (clock.ms(t0, m) for m in rest)
        spans = [(clock.ms(t0, ready), clock.ms(t0, done)) for ready, done, _ in buckets
                 if done is not None]
        self.rows.append(breakdown(fwd_end, bwd_end, opt_end, spans, sum(b for *_, b in buckets)))

    def take_rows(self) -> list[dict[str, float]]:
        """The breakdowns of the instrumented steps so far (and forget them)."""
        self.flush()
        rows, self.rows = self.rows, []
        return rows


class FlushingTimer:
    """A timer that, after timing a step, files the step's breakdown (outside the timed region)."""

    def __init__(self, inner, trainer: DDPTrainer):
        self.inner, self.trainer = inner, trainer

    def time_ms(self, step) -> float:
        ms = self.inner.time_ms(step)
        self.trainer.flush()
        return ms


class LockstepTimer:
    """A timer that starts every timed step on all ranks of `group` together (a barrier outside the
    timed region): a loaded reference's copies then compute each step side by side, phase against
    the same phase, as DDP's ranks do between their all-reduces, instead of drifting apart."""

    def __init__(self, inner, group):
        self.inner, self.group = inner, group

    def time_ms(self, step) -> float:
        dist.barrier(group=self.group)
        return self.inner.time_ms(step)


def _union_ms(spans: list[tuple[float, float]]) -> float:
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(spans):
        if cur_end is None or start > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    return total + (cur_end - cur_start if cur_end is not None else 0.0)


def breakdown(fwd_end: float, bwd_end: float, opt_end: float, spans: list[tuple[float, float]],
              nbytes: int) -> dict[str, float]:
    """The parts of one step from its marks (ms since step start) and the buckets' [ready, done]."""
    if spans:
        compute_end = max(start for start, _ in spans)  # the last bucket ready: gradients all exist
        exposed = min(max(0.0, max(end for _, end in spans) - compute_end), bwd_end - compute_end)
        exposed = max(0.0, exposed)
    else:
        exposed = 0.0
    total = _union_ms(spans)
    return {
        "forward_ms": fwd_end,
        "backward_ms": (bwd_end - fwd_end) - exposed,
        "optimizer_ms": opt_end - bwd_end,
        "comm_exposed_ms": exposed,
        "comm_total_ms": total,
        "comm_overlapped_ms": max(0.0, total - exposed),
        "step_ms": opt_end,
        "bytes_allreduced": float(nbytes),
        "buckets": float(len(spans)),
    }


def ddp_logging(ddp: DDP) -> dict:
    """What DDP's own logger recorded (`_get_ddp_logging_data`, a private but long-standing API):
    bucket layout, and its sampled timings converted from ns to ms."""
    try:
        data = ddp._get_ddp_logging_data()
    except Exception:  # private API: absent or changed in some version
        return {}
    keep = ("bucket_cap_bytes", "bucket_sizes", "rebuilt_bucket_sizes", "has_rebuilt_buckets",
            "total_parameter_size_bytes", "num_parameter_tensors", "gradient_as_bucket_view",
            "static_graph", "comm_hook", "backend_name", "iteration", "num_buckets_reduced",
            "gloo_num_threads", "gloo_socket_ifname", "master_addr", "dtypes", "world_size")
    out = {k: data[k] for k in keep if k in data}
    for key in ("avg_forward_compute_time", "avg_backward_compute_time", "avg_backward_comm_time",
                "avg_backward_compute_comm_overlap_time"):
        if key in data:
            out[key.replace("_time", "_ms")] = data[key] / 1e6
    return out


def step_timer(device: torch.device):
    """The single-device engine's timers. On CUDA, events on the current stream around the step: DDP
    makes that stream wait for the buckets' all-reduces before backward returns, so the end event
    comes after the communication too."""
    return CudaTimer(device) if device.type == "cuda" else CpuTimer()


def collective_flag(group) -> Callable[[bool], bool]:
    """`agree` for the methodology: done only when every rank is done (all-reduce MIN of a flag)."""

    def agree(local_done: bool) -> bool:
        flag = torch.tensor([1 if local_done else 0], dtype=torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=group)
        return bool(flag.item())

    return agree
