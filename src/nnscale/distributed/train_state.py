"""What every data-parallel strategy builds on one rank: the model, its data, optimizer and precision.

DDP (`ddp_step`) and FSDP (`fsdp_step`) wrap the same `TrainState`, so the two strategies train the
same network on the same per-rank batch with the same optimizer and mixed precision, and differ only
in how gradients and parameters are communicated and stored. The step is the single-device
engine's (nnscale.measure.torch_backend; for a language model nnscale.measure.lm's: random token
ids, the next-token cross-entropy): forward, the training loss, backward, SGD with momentum,
zero_grad; mixed precision under `torch.autocast`, fp16 with a gradient scaler; on CUDA
`cudnn.benchmark` on and TF32 only when asked.

`Clock` puts marks on one timeline: perf_counter on CPU, CUDA events on the current stream on GPU,
read once the step has synchronized, so GPU time and not host enqueue time is measured.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch

from nnscale.measure.torch_backend import (AMP_DTYPES, SGD_LR, SGD_MOMENTUM, set_tf32,
                                           training_loss)
from nnscale.zoo import create_model, model_info

STRATEGIES = ("ddp", "fsdp")


@dataclass(frozen=True, slots=True)
class StepOptions:
    model: str
    batch: int  # per worker
    input_shape: tuple[int, ...]
    precision: str = "fp32"
    bucket_mb: float = 25.0  # DDP only, as the three below
    grad_as_bucket_view: bool = False
    static_graph: bool = False
    comm_hook: str = "none"
    channels_last: bool = False
    strategy: str = "ddp"


class Clock:
    """Marks on one timeline: perf_counter on CPU, CUDA events on the current stream on GPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def ms(self, start, end) -> float:
        """Milliseconds from mark `start` to mark `end` (both complete: see `wait`)."""
        return start.elapsed_time(end) if self.cuda else (end - start) * 1000.0

    def wait(self, *marks) -> None:
        """Until the marks have happened (CUDA events complete; CPU readings already have)."""
        if self.cuda:
            for event in marks:
                event.synchronize()


def amp_context(device: torch.device, precision: str):
    """Mixed precision as the single-device engine runs it (nnscale.measure.torch_backend)."""
    dtype = AMP_DTYPES.get(precision)
    if dtype is not None:
        return lambda: torch.autocast(device.type, dtype=dtype)
    return contextlib.nullcontext


class TrainState:
    """The model, its synthetic batch, optimizer, scaler and precision on one rank.

    The optimizer is made by `make_optimizer` once the strategy has wrapped the module: FSDP
    replaces the parameters by sharded DTensors, and the optimizer must hold those.
    """

    def __init__(self, opts: StepOptions, device: torch.device, seed: int):
        self.opts, self.device = opts, device
        info = model_info(opts.model)
        torch.manual_seed(seed)  # DDP broadcasts rank 0's weights; the data differs per rank
        self.module = create_model(opts.model).to(device)
        fmt = torch.channels_last if opts.channels_last else torch.contiguous_format
        if opts.channels_last:
            self.module = self.module.to(memory_format=fmt)
        if info.is_lm:  # token ids (batch, S), the next-token loss (as nnscale.measure.lm trains)
            from nnscale.netstats.lm import next_token_loss

            self.x = torch.randint(0, info.lm_shape.vocab_size, (opts.batch, *opts.input_shape),
                                   device=device)
            self.y, self._loss = self.x, next_token_loss
        else:
            self.x = torch.randn(opts.batch, *opts.input_shape, device=device).to(memory_format=fmt)
            self.y = torch.randint(0, info.num_classes, (opts.batch,), device=device)
            self._loss = training_loss
        self.optimizer: torch.optim.Optimizer | None = None
        self.scaler = torch.amp.GradScaler(device.type) if opts.precision == "fp16" else None
        self.amp = amp_context(device, opts.precision)
        if device.type == "cuda":  # as the single-device engine: fixed shapes, TF32 only if asked
            torch.backends.cudnn.benchmark = True
            set_tf32(opts.precision == "tf32")

    def make_optimizer(self) -> None:
        self.optimizer = torch.optim.SGD(self.module.parameters(), lr=SGD_LR, momentum=SGD_MOMENTUM)

    def loss(self, net) -> torch.Tensor:
        """Forward and loss through `net` (the wrapped module), under the chosen precision."""
        with self.amp():
            return self._loss(net(self.x), self.y)

    def backward_and_update(self, loss, marks: list | None, clock: Clock | None) -> None:
        """Backward, optimizer step, zero_grad; with `marks`, one mark when backward returned."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if marks is not None:
                marks.append(clock.mark())
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if marks is not None:
                marks.append(clock.mark())
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def state_bytes(self) -> dict[str, int]:
        """Bytes this rank holds of parameters, gradients and optimizer state, counted from the
        tensors (a sharded DTensor counts its local shard): the part sharding divides."""

        def local(t) -> int:
            t = getattr(t, "_local_tensor", t)  # DTensor: this rank's shard
            return t.numel() * t.element_size()

        params = list(self.module.parameters())
        opt_bytes = 0
        if self.optimizer is not None:
            for st in self.optimizer.state.values():
                opt_bytes += sum(local(v) for v in st.values() if isinstance(v, torch.Tensor))
        # Gradients live from backward to zero_grad(set_to_none): one per trainable parameter, of
        # its size, so they are counted from the parameters (after the step they are gone).
        return {"param_bytes": sum(local(p) for p in params),
                "grad_bytes": sum(local(p) for p in params if p.requires_grad),
                "optimizer_state_bytes": opt_bytes}
