"""What every data-parallel strategy builds on one rank: the model, its data, optimizer and precision.

DDP (`ddp_step`) and FSDP (`fsdp_step`) wrap the same `TrainState`, so the two strategies train the
same network on the same per-rank batch with the same optimizer and mixed precision, and differ only
in how gradients and parameters are communicated and stored. `TrainState` is the single-device
engine's `TrainingStep` (nnscale.measure.backends.torch: the model on the device, channels-last,
SGD with momentum, autocast, fp16's gradient scaler, cuDNN and TF32 settings) plus the rank's batch
(for a language model nnscale.measure.lm's: random token ids, the next-token cross-entropy) and the
phase marks of the breakdown.

`Clock` puts marks on one timeline: perf_counter on CPU, CUDA events on the current stream on GPU,
read once the step has synchronized, so GPU time and not host enqueue time is measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from nnscale.measure.backends.torch import TrainingStep, training_loss
from nnscale.zoo import model_info

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


class TrainState(TrainingStep):
    """The model, its synthetic batch, optimizer, scaler and precision on one rank.

    The optimizer is made by `make_optimizer` once the strategy has wrapped the module: FSDP
    replaces the parameters by sharded DTensors, and the optimizer must hold those.
    """

    def __init__(self, opts: StepOptions, device: torch.device, seed: int):
        self.opts = opts
        info = model_info(opts.model)
        torch.manual_seed(seed)  # DDP broadcasts rank 0's weights; the data differs per rank
        super().__init__(opts.model, opts.precision, device, opts.channels_last)
        if info.is_lm:  # token ids (batch, S), the next-token loss (as nnscale.measure.lm trains)
            from nnscale.netstats.lm import next_token_loss

            self.x = torch.randint(0, info.lm_shape.vocab_size, (opts.batch, *opts.input_shape),
                                   device=device)
            self.y, self._loss = self.x, next_token_loss
        else:
            self.x = self.inputs(opts.batch, opts.input_shape)
            self.y = torch.randint(0, info.num_classes, (opts.batch,), device=device)
            self._loss = training_loss

    def loss(self, net) -> torch.Tensor:
        """Forward and loss through `net` (the wrapped module), under the chosen precision."""
        with self.amp():
            return self._loss(net(self.x), self.y)

    def backward_and_update(self, loss, marks: list | None, clock: Clock | None) -> None:
        """Backward, optimizer step, zero_grad; with `marks`, one mark when backward returned."""
        self.optimizer_step(loss, None if marks is None else lambda: marks.append(clock.mark()))

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
