"""The terms real clusters lose beyond alpha-beta time, each with its source (docs/prediction.md).

- contention: compute slowed while a collective runs on the same device. NCCL's kernels take SMs
  and memory bandwidth from the backward kernels they overlap (A. Rashidi et al., "Enabling
  Compute-Communication Overlap in Distributed Deep Learning Training Platforms", ISCA 2021, §2-3:
  overlapped communication slows the compute it overlaps). Modelled as the backward progressing at
  1 / (1 + contention) of its speed while the communication stream is busy (`Timeline`); the link
  itself is not slowed. The value is a global default fitted to the published suite (labelled
  there; published.py reports it leave-one-case-out).
- synchronisation: a synchronous step ends when the slowest of N workers is done, so it costs the
  expected maximum of N draws of the step time, not its median (J. Chen et al., "Revisiting
  Distributed Synchronous SGD", arXiv:1604.00981, 2016, §2.1). From the measured per-iteration
  samples (the store's `samples_ms`) by order statistics (`expected_max_empirical`), else from a
  normal with a documented coefficient of variation (`expected_max_normal`, Blom's approximation,
  G. Blom, "Statistical Estimates and Transformed Beta-Variables", 1958).
- framework: a fixed per-step cost of the data-parallel wrapper per layer that owns gradients
  (autograd hooks, bucket bookkeeping, Horovod's per-tensor negotiation). From the PyTorch DDP
  benchmark (pytorch/pytorch benchmarks/distributed/ddp/README.md, DGX-1 V100, batch 32): one GPU
  without DDP 0.097 s / 0.162 s per step for ResNet-50 / ResNet-101, with DDP on one GPU 0.100 s /
  0.171 s: 3 ms over 107 layers with parameters and 9 ms over 209 (nnscale stats): (3 + 9) ms /
  (107 + 209) = 38 us per layer. A calibration input: the DDP cases are labelled so in published.py.
- launch: a fixed per-step cost of the compute itself, one kernel launch per layer and pass
  (forward, backward-data, backward-weight: 3 per layer), ~4 us each (A. Gray, "Getting Started
  with CUDA Graphs", NVIDIA developer blog, 2019: 3.8 us per short kernel launched back to back).
  It makes a device's efficiency fall at small per-device batches (`compute_at_batch`).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from nnscale.errors import UserError

LAUNCH_S_PER_KERNEL = 3.8e-6  # Gray 2019 (module docstring)
KERNELS_PER_LAYER = 3  # forward, backward w.r.t. the input, backward w.r.t. the weights
FRAMEWORK_S_PER_LAYER = 38e-6  # the DDP benchmark's 1-GPU DDP rows (module docstring)
# Step-time jitter of one GPU: the DDP benchmark prints p50 = p95 to its 1 ms resolution on one GPU
# (0.097 s and 0.162 s), so sigma <= 0.5 ms / 1.645 = 0.3 ms of 97 ms; 0.3 % is that bound.
JITTER_CV = 0.003
CONTENTION = 0.15  # least squares over the published suite's calibration cases: 0.149 (published.py)


@dataclass(frozen=True, slots=True)
class Terms:
    """The global values of the terms; `NONE` switches them all off (the plain timeline model)."""

    contention: float = CONTENTION
    jitter_cv: float = JITTER_CV
    framework_s_per_layer: float = FRAMEWORK_S_PER_LAYER
    launch_s_per_kernel: float = LAUNCH_S_PER_KERNEL

    def __post_init__(self) -> None:
        for what, v in (("contention", self.contention), ("jitter", self.jitter_cv),
                        ("framework cost", self.framework_s_per_layer),
                        ("launch cost", self.launch_s_per_kernel)):
            if not (math.isfinite(v) and v >= 0):
                raise UserError(f"{what} must be a finite number >= 0, got {v!r}")


CATALOGUE = Terms()
NONE = Terms(0.0, 0.0, 0.0, 0.0)


def expected_max_normal(n: int) -> float:
    """E[max of n standard normals]: exact for n <= 2 (0, and 1/sqrt(pi) = 0.564), else Blom's
    approximation Phi^-1((n - 0.375) / (n + 0.25)) (3.04 for n = 512; within a few % of the exact)."""
    if n <= 1:
        return 0.0
    if n == 2:
        return 1 / math.sqrt(math.pi)
    return NormalDist().inv_cdf((n - 0.375) / (n + 0.25))


def expected_max_empirical(samples: Sequence[float], n: int) -> float:
    """E[max of n iid draws] from the empirical distribution of `samples` (order statistics:
    P(max = x_(i)) = (i/m)^n - ((i-1)/m)^n), minus its median: the synchronisation cost.
    It cannot exceed the largest sample: with few samples and large n it is a lower bound."""
    xs = sorted(samples)
    m = len(xs)
    if n <= 1 or m < 2:
        return 0.0
    e = sum(x * ((i / m) ** n - ((i - 1) / m) ** n) for i, x in enumerate(xs, start=1))
    median = xs[m // 2] if m % 2 else (xs[m // 2 - 1] + xs[m // 2]) / 2
    return max(0.0, e - median)


def sync_cost_s(step_s: float, workers: int, jitter_cv: float, samples_s: Sequence[float] = ()) -> float:
    """Seconds the slowest of `workers` adds to a step of median `step_s`: from measured samples
    when there are some, else sigma = jitter_cv x step."""
    if workers <= 1:
        return 0.0
    if len(samples_s) >= 2:
        return expected_max_empirical(samples_s, workers)
    return jitter_cv * step_s * expected_max_normal(workers)


def launch_cost_s(layers: int, s_per_kernel: float = LAUNCH_S_PER_KERNEL) -> float:
    """The per-step kernel-launch floor of `layers` layers (module docstring)."""
    return layers * KERNELS_PER_LAYER * s_per_kernel


class Timeline:
    """Backward's progress against the communication stream's busy intervals (contention).

    Work is measured in seconds of uncontended backward; while a collective runs, backward advances
    at 1 / (1 + contention). Collectives are appended in launch order (one stream: they never
    overlap each other and start no earlier than the previous one ended), so the wall time of a
    piece of work depends only on those already placed. Each interval keeps the work done by its
    start and end, so `wall` is a binary search.
    """

    def __init__(self, contention: float) -> None:
        self.rate = 1.0 / (1.0 + contention)
        self.busy: list[tuple[float, float]] = []
        self._work_end: list[float] = []  # backward work done when each interval ends
        self._work_start: list[float] = []

    def wall(self, work: float) -> float:
        """When backward has done `work` seconds of its uncontended work."""
        k = bisect_left(self._work_end, work)  # the first interval that ends with at least `work` done
        if k == len(self.busy):  # after every interval: full speed from the last end
            end = self.busy[-1][1] if self.busy else 0.0
            return end + (work - (self._work_end[-1] if self.busy else 0.0))
        start, _ = self.busy[k]
        if work <= self._work_start[k]:  # in the free gap before interval k
            return start - (self._work_start[k] - work)
        return start + (work - self._work_start[k]) / self.rate

    def add(self, start: float, duration: float) -> float:
        """Place a collective; returns when it ends."""
        prev_end, prev_work = (self.busy[-1][1], self._work_end[-1]) if self.busy else (0.0, 0.0)
        start = max(start, prev_end)
        self._work_start.append(prev_work + (start - prev_end))
        self._work_end.append(self._work_start[-1] + duration * self.rate)
        self.busy.append((start, start + duration))
        return start + duration
