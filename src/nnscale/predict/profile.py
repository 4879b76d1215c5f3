"""What the model knows about a network: parameters, FLOPs, per-layer work and, when measured, its
single-device step time (at one batch, or a sweep of batches) and that step's per-iteration samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnscale.errors import UserError


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer in forward order: its parameters and its share of the work (any unit, e.g. MACs)."""

    params: int
    work: float


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What the model needs to know about a network. FLOPs are per sample."""

    name: str
    params: int
    forward_flops: float
    training_flops: float  # forward + backward
    bytes_per_grad: int = 4
    step_time_s: float | None = None  # measured single-device step at measured_batch
    measured_batch: int | None = None
    optimizer_s: float | None = None  # measured optimizer part of step_time_s, if known
    layers: tuple[Layer, ...] = ()  # forward order; empty = uniform
    source: str = "statistics"
    # The run's single-device sweep: (batch, step seconds) at each measured batch, for the compute
    # at another per-device batch (strong scaling); empty = only step_time_s at measured_batch.
    sweep: tuple[tuple[int, float], ...] = ()
    samples_s: tuple[float, ...] = ()  # per-iteration step times at measured_batch (synchronisation)
    # Measured co-location: (workers per node N, the compute of N copies of the one-worker step run
    # at once on the workers' cores over the lone worker's, points.loaded_ratio) from a run's loaded
    # references (records.Workload.concurrent_copies). Applied to a node of exactly N workers.
    loaded_factor: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        for what, v in (("parameters", self.params), ("training FLOPs", self.training_flops),
                        ("bytes per gradient element", self.bytes_per_grad)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise UserError(f"model {self.name}: {what} must be positive, got {v!r}")
        if not (0 <= self.forward_flops <= self.training_flops):
            raise UserError(f"model {self.name}: forward FLOPs must be in [0, training FLOPs]")
        if self.step_time_s is not None and not (self.step_time_s > 0 and (self.measured_batch or 0) > 0):
            raise UserError(f"model {self.name}: a measured step time needs step time > 0 and its batch > 0")
        if any(not (n > 1 and math.isfinite(f) and f > 0) for n, f in self.loaded_factor):
            raise UserError(f"model {self.name}: a co-location factor needs N > 1 workers and a "
                            f"factor > 0, got {self.loaded_factor}")

    def co_located_factor(self, per_node: int) -> float:
        """The compute factor of `per_node` workers sharing a node: the measured loaded/lone ratio
        for exactly that many (a ratio for 2 says nothing about 8: memory bandwidth and caches are
        shared differently), else 1 (no measured co-location: a GPU of its own, or not known)."""
        return dict(self.loaded_factor).get(per_node, 1.0) if per_node > 1 else 1.0

    @property
    def grad_bytes(self) -> float:
        return self.params * self.bytes_per_grad

    @property
    def gradient_layers(self) -> int:
        """Layers that own gradients (each a framework hook per step); 50 assumed without a table."""
        return sum(1 for layer in self.layers if layer.params > 0) if self.layers else 50

    def measured_step_s(self, batch: int) -> float:
        """The measured single-device step at `batch`: from the sweep, per-sample time interpolated
        linearly in log batch between the two measured batches around it (a batch outside the sweep
        is a UserError: extrapolating a GPU's or CPU's batch efficiency is guessing); without a
        sweep, step_time_s scaled linearly from measured_batch."""
        if self.step_time_s is None:
            raise ValueError("not a measured profile")
        if len(self.sweep) < 2 or batch == self.measured_batch:
            return self.step_time_s * batch / self.measured_batch
        pts = sorted(self.sweep)
        if not pts[0][0] <= batch <= pts[-1][0]:
            raise UserError(f"model {self.name}: the run measured one worker at batches "
                            f"{', '.join(str(b) for b, _ in pts)}; batch {batch} per worker is outside "
                            "them: measure it (nnscale sweep with that batch) or choose --global-batch "
                            "so that every per-worker batch lies within")
        for (b0, t0), (b1, t1) in zip(pts, pts[1:]):
            if b0 <= batch <= b1:
                w = 0.0 if b1 == b0 else math.log(batch / b0) / math.log(b1 / b0)
                per_sample = math.exp((1 - w) * math.log(t0 / b0) + w * math.log(t1 / b1))
                return per_sample * batch
        raise AssertionError("unreachable")
