"""The narrow seam between the measurement engine and a framework: the `Backend` base class.

A backend turns a `Workload` into a timed step, a timer and a memory probe; the methodology
(`methodology.measure`), the statistics and the store never see the framework. The base owns what
every framework does the same way — the thread count (`threads_for`), the device index
(`device_index`), seeding, the optimizer's constants, what counts as out of memory, the host-memory
probe and `close()` — so a backend (torch.py, tensorflow.py, jax.py, onnxruntime.py) only builds
its model and its step (`build`). The framework's `FrameworkSpec` (`measure/frameworks.py`) names the
class, imported lazily, so a worker loads only the framework it measures.
"""

from __future__ import annotations

import gc
import importlib
import os
import random
import resource
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from nnscale.measure.frameworks import framework_spec
from nnscale.measure.methodology import Timer
from nnscale.host import usable_cores
from nnscale.records import Workload

# Error texts that mean "out of memory" whatever the exception type: glibc/C++ (ENOMEM,
# std::bad_alloc), PyTorch's CPU allocator ("DefaultCPUAllocator: can't allocate memory") and CUDA
# caching allocator ("CUDA out of memory"), cuDNN/cuBLAS workspace failures, TensorFlow's
# ResourceExhaustedError ("OOM when allocating tensor") and XLA's status code RESOURCE_EXHAUSTED
# (JAX: "RESOURCE_EXHAUSTED: Out of memory while trying to allocate").
OOM_MARKERS = (
    "out of memory",
    "OOM when allocating",
    "RESOURCE_EXHAUSTED",
    "can't allocate memory",
    "cannot allocate memory",
    "bad_alloc",
    "_ALLOC_FAILED",
)


def looks_like_oom(text: str) -> bool:
    low = text.lower()
    return any(marker.lower() in low for marker in OOM_MARKERS)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A point ready to time: call `step` once per iteration, time it with `timer`."""

    step: Callable[[], object]
    timer: Timer
    threads: int  # intra-op threads in effect
    device_name: str  # e.g. "AMD EPYC" or "NVIDIA H100 80GB HBM3"
    # What ran, stored with the point's statistics: framework_version, framework_mode (e.g.
    # "tf.function+xla"), and framework specifics (onnx_opset, ort_providers, thread settings).
    info: dict = field(default_factory=dict)


def device_index(device: str) -> int:
    """'cuda:1' -> 1; 'cuda' and 'cpu' -> 0: the one parse of a device string's index."""
    return int(device.partition(":")[2] or 0)


def canonical_device(device: str) -> str:
    """The one name of a device in stored rows: 'cuda' -> 'cuda:0' (as `check_device` normalises a
    sweep's --device), so a GPU measured by `sweep` and by `scale` is one device. A multi-GPU launch
    is named by its first GPU; its world size says how many. Rows stored before say 'cuda'."""
    return "cuda:0" if device == "cuda" else device


class Backend(ABC):
    """One framework. Make one per point (a fresh worker process), then `prepare` the workload.

    The memory probe starts when `build` resets it (`self.host_peak.reset()`), so the peak counts the
    model, its inputs, the activations and (training) the gradients and optimizer state: what must
    fit.
    """

    framework: str = ""
    # The training step's optimizer in every framework: SGD with momentum 0.9, the optimizer of the
    # seed's ResNet training (He et al. 2016, §3.4), learning rate 0.01.
    SGD_LR = 0.01
    SGD_MOMENTUM = 0.9
    # Names of exception types that mean "out of memory" in this framework (matched over the MRO,
    # so no framework is imported to test them); the error texts of every framework are OOM_MARKERS.
    oom_types: tuple[str, ...] = ("MemoryError",)
    # Attributes holding what `build` made (model, session, state): dropped by `close`.
    held: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.host_peak = HostPeak()

    def prepare(self, workload: Workload, seed: int = 0) -> Prepared:
        """Seed, resolve threads, `build` the model, inputs and step; record what ran (the spec's
        name of the step, e.g. "tf.function+xla") and the data layout."""
        random.seed(seed)
        prepared = self.build(workload, seed, self.threads_for(workload))
        prepared.info.setdefault("framework_mode", framework_spec(self.framework).run_name(workload.compile))
        prepared.info.setdefault("data_layout", self.data_layout(workload))
        return prepared

    @abstractmethod
    def build(self, workload: Workload, seed: int, threads: int) -> Prepared:
        """Build the model and synthetic inputs on the device (fixed seeds) and the step, running
        `threads` intra-op threads."""

    def data_layout(self, workload: Workload) -> str:
        """How an image batch is laid out in memory (stored as `data_layout`)."""
        return "NHWC" if workload.channels_last else "NCHW"

    @staticmethod
    def threads_for(workload: Workload) -> int:
        """The workload's intra-op threads; all usable cores when it leaves them open."""
        return workload.threads or usable_cores()

    def peak_memory_bytes(self) -> int | None:
        """Peak memory since the probe was reset, or None when it cannot be known. Default: the
        growth of the host's peak RSS (CPU points); GPU backends override."""
        return self.host_peak.growth_bytes()

    def is_oom(self, exc: BaseException) -> bool:
        """Whether `exc` means the point did not fit in memory."""
        names = {t.__name__ for t in type(exc).__mro__}
        return bool(names & set(self.oom_types)) or looks_like_oom(str(exc))

    def limit_memory(self, cap_bytes: int, device: str) -> None:
        """Let this process grow by at most `cap_bytes`; an allocation beyond fails (an OOM point).

        Default, for host memory: RLIMIT_AS (setrlimit(2)), the address space now plus the cap —
        the kernel then refuses the allocation instead of its OOM killer ending the process.
        Virtual, not resident, size: slightly conservative. Never on a GPU device, where the
        driver maps large virtual ranges and RLIMIT_AS would break initialisation.
        """
        if device != "cpu":
            return
        with open("/proc/self/statm") as f:
            now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = now + int(cap_bytes)
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)  # an unprivileged process cannot raise its hard limit
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    def close(self) -> None:
        """Give back what `build` took (for in-process use after an OOM); workers just exit."""
        for name in self.held:
            setattr(self, name, None)
        gc.collect()


def get_backend(framework: str) -> Backend:
    """A fresh backend for `framework` (its spec names the class; imported now, in the worker)."""
    module, _, cls = framework_spec(framework).backend.partition(":")
    return getattr(importlib.import_module(module), cls)()


def proc_status_kib(field_name: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), None when unreadable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "cpu"


class HostPeak:
    """Growth of the process's peak resident set (VmHWM) since `reset`, for CPU points.

    `reset` writes "5" to /proc/self/clear_refs, which resets the peak RSS to the current RSS
    (proc(5); Linux >= 4.0), and remembers the RSS then: the peak growth counts what the point
    allocated (model, inputs, activations, gradients, optimizer state), not the interpreter.
    """

    def __init__(self) -> None:
        self._base_kib: int | None = None

    def reset(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:  # not Linux, or not allowed: fall back to ru_maxrss, which cannot be reset
            pass
        self._base_kib = proc_status_kib("VmRSS")

    def growth_bytes(self) -> int | None:
        if self._base_kib is None:
            return None
        peak = proc_status_kib("VmHWM")
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return max(0, peak - self._base_kib) * 1024


def available_host_memory_bytes() -> int | None:
    """MemAvailable of proc(5): what can be allocated without swapping."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
