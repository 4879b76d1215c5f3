"""One fully sharded data-parallel training step (FSDP2, `torch.distributed.fsdp.fully_shard`).

Sharding, as PyTorch's FSDP2 tutorial and torchtitan apply it: `fully_shard` on every block, then
on the root. A block is a child of the first `nn.ModuleList` / `nn.Sequential` met on each path down
from the root (a transformer's layers, a ResNet stage's bottlenecks, an MLP's layers); what no block
holds (embeddings, stem, head) belongs to the root's group. Each rank keeps 1/world of every
parameter, gradient and momentum buffer; a block's parameters are all-gathered just before its
forward and, resharded after it, again before its backward; its gradients are reduce-scattered
once its backward is done (Zhao et al., "PyTorch FSDP: Experiences on Scaling Fully Sharded Data
Parallel", VLDB 2023, §3; FSDP2 shards each parameter on dim 0 as a DTensor).

The step is the same `TrainState` step as DDP's (model, batch, optimizer, precision), so the two
strategies differ only in communication and memory.

Breakdown (docs/distributed.md). Every FSDP module gets timed collectives through its public
hooks `set_custom_all_gather` / `set_custom_reduce_scatter` (torch >= 2.8): the same
`all_gather_single` / `reduce_scatter_single` FSDP calls by default, with a mark before and after.
With marks at the phase boundaries of the step:

    comm total    = length of the union of the collectives' [start, end] spans
    exposed comm  = the part of it during which the training thread waited (below)
    forward       = forward phase − exposed comm inside it
    backward      = backward phase − exposed comm inside it
    optimizer     = optimizer step + zero_grad (local: every rank updates its own shard)

so forward + backward + optimizer + exposed is the step's time exactly. On CPU FSDP2 issues its
collectives synchronously from the training thread (no streams: the default unshard is not
`async_op`, and the reduce-scatter is called without it), so a collective's whole span is exposed
and nothing overlaps. On CUDA the marks are events on FSDP's communication streams, which overlap
compute; the exposed part is then not separated (`exposed_measured` False, stored as None).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from nnscale.distributed.ddp_step import _union_ms
from nnscale.distributed.train_state import Clock, StepOptions, TrainState

# What FSDP2 calls by default; torch < 2.14 names them all_gather_into_tensor / reduce_scatter_tensor.
_ALL_GATHER = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_REDUCE_SCATTER = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


class CollectiveRecorder:
    """Collects this step's [kind, start mark, end mark, bytes, blocking] per collective."""

    def __init__(self, clock: Clock, blocking: bool):
        self.clock, self.blocking = clock, blocking
        self.spans: list[list] = []

    def run(self, kind: str, nbytes: int, call):
        record = [kind, self.clock.mark(), None, nbytes, self.blocking]
        self.spans.append(record)
        work = call()
        if work is None:  # synchronous: done when the call returns (CPU) / enqueued after it (CUDA)
            record[2] = self.clock.mark()
        else:  # asynchronous: done when its future completes; the thread did not wait meanwhile
            record[4] = False

            def done(fut):
                record[2] = self.clock.mark()
                return fut.value()

            work.get_future().then(done)
        return work


def _comm_classes():
    # The interfaces `set_custom_all_gather` / `set_custom_reduce_scatter` take (torch >= 2.8).
    from torch.distributed.fsdp._fully_shard._fsdp_api import AllGather, ReduceScatter

    class TimedAllGather(AllGather):
        def __init__(self, recorder: CollectiveRecorder):
            self.recorder = recorder

        def allocate(self, size, *, dtype, device):
            return torch.empty(*size, dtype=dtype, device=device)

        def __call__(self, output_tensor, input_tensor, group, async_op=False):
            nbytes = output_tensor.numel() * output_tensor.element_size()
            return self.recorder.run("all_gather", nbytes, lambda: _ALL_GATHER(
                output_tensor, input_tensor, group=group, async_op=async_op))

    class TimedReduceScatter(ReduceScatter):
        def __init__(self, recorder: CollectiveRecorder):
            self.recorder = recorder

        def allocate(self, size, *, dtype, device):
            return torch.empty(*size, dtype=dtype, device=device)

        def __call__(self, output_tensor, input_tensor, group, op, async_op=False):
            nbytes = input_tensor.numel() * input_tensor.element_size()
            return self.recorder.run("reduce_scatter", nbytes, lambda: _REDUCE_SCATTER(
                output_tensor, input_tensor, op=op, group=group, async_op=async_op))

    return TimedAllGather, TimedReduceScatter


def blocks(root: nn.Module) -> list[nn.Module]:
    """The modules sharded before the root: the children holding parameters of the first
    ModuleList / Sequential on each path down from the root (see the module docstring)."""
    found: list[nn.Module] = []

    def walk(m: nn.Module) -> None:
        for child in m.children():
            if isinstance(child, (nn.ModuleList, nn.Sequential)):
                found.extend(c for c in child.children() if any(True for _ in c.parameters()))
            else:
                walk(child)

    if isinstance(root, (nn.ModuleList, nn.Sequential)):
        found.extend(c for c in root.children() if any(True for _ in c.parameters()))
    else:
        walk(root)
    return found


class FSDPTrainer:
    """A rank's `TrainState`, sharded with FSDP2, every collective timed."""

    def __init__(self, opts: StepOptions, device: torch.device, seed: int):
        from torch.distributed.fsdp import fully_shard

        self.opts, self.device = opts, device
        self.state = TrainState(opts, device, seed)
        self.module = self.state.module
        self.clock = Clock(device)
        self.recorder = CollectiveRecorder(self.clock, blocking=device.type == "cpu")
        timed_gather, timed_scatter = _comm_classes()
        units = blocks(self.module)
        for unit in units:
            fully_shard(unit)
        fully_shard(self.module)
        for unit in [*units, self.module]:  # now FSDPModules: each gets the timed collectives
            unit.set_custom_all_gather(timed_gather(self.recorder))
            unit.set_custom_reduce_scatter(timed_scatter(self.recorder))
        self.state.make_optimizer()  # over the sharded parameters (DTensors)
        self.optimizer = self.state.optimizer
        self.layout = {"blocks": len(units), "block_type": sorted({type(u).__name__ for u in units}),
                       "reshard_after_forward": "blocks: True, root: False (FSDP2 default)",
                       "mesh": f"1-D over {dist.get_world_size()} rank(s)"}
        self.rows: list[dict[str, float]] = []
        self._pending: tuple | None = None

    def step(self) -> None:
        """One training step; its marks are left pending for `flush` (outside the timed region)."""
        clock = self.clock
        self.recorder.spans = []
        marks = [clock.mark()]
        loss = self.state.loss(self.module)
        marks.append(clock.mark())
        self.state.backward_and_update(loss, marks, clock)
        marks.append(clock.mark())
        self._pending = (marks, self.recorder.spans)

    def flush(self) -> None:
        if self._pending is None:
            return
        (t0, *rest), spans = self._pending
        self._pending = None
        clock = self.clock
        clock.wait(rest[-1], *(s[2] for s in spans if s[2] is not None))
        fwd_end, bwd_end, opt_end = (clock.ms(t0, m) for m in rest)
        timed = [(kind, clock.ms(t0, a), clock.ms(t0, b), n, blocking)
                 for kind, a, b, n, blocking in spans if b is not None]
        self.rows.append(fsdp_breakdown(fwd_end, bwd_end, opt_end, timed))

    def take_rows(self) -> list[dict[str, float]]:
        self.flush()
        rows, self.rows = self.rows, []
        return rows


def _overlap_ms(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    return _union_ms([(max(a, lo), min(b, hi)) for a, b in spans if min(b, hi) > max(a, lo)])


def fsdp_breakdown(fwd_end: float, bwd_end: float, opt_end: float,
                   spans: list[tuple[str, float, float, int, bool]]) -> dict[str, float]:
    """The parts of one step from its marks (ms since step start) and the collectives' spans
    (kind, start, end, bytes, blocking)."""
    blocking = [(a, b) for _, a, b, _, blk in spans if blk]
    fwd_wait, bwd_wait = _overlap_ms(blocking, 0.0, fwd_end), _overlap_ms(blocking, fwd_end, bwd_end)
    exposed = fwd_wait + bwd_wait
    total = _union_ms([(a, b) for _, a, b, _, _ in spans])

    def of(kind: str, what: int) -> float:
        return float(sum(s[what] if what == 3 else s[2] - s[1] for s in spans if s[0] == kind))

    return {
        "forward_ms": fwd_end - fwd_wait,
        "backward_ms": (bwd_end - fwd_end) - bwd_wait,
        "optimizer_ms": opt_end - bwd_end,
        "comm_exposed_ms": exposed,
        "comm_total_ms": total,
        "comm_overlapped_ms": max(0.0, total - exposed),
        "step_ms": opt_end,
        "all_gather_ms": of("all_gather", 0),
        "reduce_scatter_ms": of("reduce_scatter", 0),
        "bytes_all_gathered": of("all_gather", 3),
        "bytes_reduce_scattered": of("reduce_scatter", 3),
        "all_gathers": float(sum(s[0] == "all_gather" for s in spans)),
        "reduce_scatters": float(sum(s[0] == "reduce_scatter" for s in spans)),
    }
