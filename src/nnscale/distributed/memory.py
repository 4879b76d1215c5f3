"""Peak memory of one rank's training steps, for comparing strategies (DDP against FSDP).

A pass of its own before the timed steps (the same count on every rank, `MEMORY_STEPS`; it is
also warm-up), with the allocator set so that the resident set follows the live tensors, and then
set back to how glibc runs by itself in a steady state, for the timing.

CPU: the process's peak resident set (VmHWM of proc(5)) over those steps, less the resident set of
the bare worker (interpreter, torch, process groups and the modules the model needs: VmRSS after
building the model once on the meta device, which allocates no storage). During the pass glibc's
mmap threshold is fixed at its initial 128 KiB (mallopt(M_MMAP_THRESHOLD), mallopt(3)), so every
large tensor is its own mapping, resident while it lives and returned when freed. By itself glibc
raises the threshold to the largest block freed so far (up to 32 MiB): after the first step the
16 MB buffers FSDP gathers and frees per block then come from the heap, whose freed pages stay
resident and are reused in any order; the resident set grew to 3x the live tensors that way
(FSDP at world size 2 on test-wide-mlp built 2048 wide: 571 MB against 170 MB with the threshold
fixed). A fixed small threshold for the timing too would cost a page fault per page of every
such buffer: FSDP's step took twice as long here. So after the pass the threshold is set to 32 MiB and the trim threshold
to 64 MiB, where glibc's own rule (malloc/malloc.c, "dynamic mmap threshold") ends up for buffers
this size, and the timed steps ran as fast as with the untouched allocator (within this shared
machine's noise). `malloc_trim` first returns what set-up freed (FSDP2 builds the whole model
before sharding it), and /proc/self/clear_refs ("5") resets VmHWM to the current RSS (Linux >= 4.0).
What is left is what training holds and touches: parameters, gradients, optimizer state,
activations, communication buffers (DDP's buckets, FSDP's all-gather outputs and reduce-scatter
inputs). The timed steps' own peak, with the heap as glibc keeps it, is stored beside it
(`timed_peak_memory_bytes`).
Why RSS and not tracemalloc: torch's CPU tensors come from c10's allocator (posix_memalign), which
tracemalloc never sees, and torch keeps no CPU allocator statistics; the resident set counts every
page the rank touched, whoever allocated it. It is the single-device engine's measure too
(nnscale.measure.backends.base.HostPeak), here with the bare worker as the base.

CUDA: `torch.cuda.max_memory_allocated` since `torch.cuda.reset_peak_memory_stats` at the same
moment: the caching allocator's peak of live tensors, which counts the model state as well.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import torch

from nnscale.measure.backends.base import proc_status_kib
from nnscale.zoo import create_model


MEMORY_STEPS = 3
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h
_MMAP_MIN = 128 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MIN: the threshold it starts with
_MMAP_MAX = 32 * 1024**2  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: as far as it raises it


def _mallopt(mmap_threshold: int, trim_threshold: int | None = None) -> bool:
    """Set glibc's thresholds and return freed heap to the OS; False where there is no glibc (the
    peak may then count freed memory the allocator kept)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
        if trim_threshold is not None:
            ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1
        libc.malloc_trim(0)
        return ok
    except (OSError, AttributeError):
        return False


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:  # not allowed: VmHWM then also counts what came before (said in the method)
        return False


class RankMemory:
    """Create before the model is built (the bare worker); `measure` before the timed steps,
    `timed_peak` after them."""

    def __init__(self, device: torch.device, model: str):
        self.device = device
        self.cuda = device.type == "cuda"
        # The model built once on the meta device first: the modules it imports (torchvision,
        # transformers: 100-200 MB resident) belong to the bare worker, not to training.
        with torch.device("meta"):
            create_model(model)
        gc.collect()
        self.bare_kib = proc_status_kib("VmRSS")
        self.setup_kib: int | None = None
        self.reset_ok = self.allocator_fixed = False

    def measure(self, trainer) -> dict:
        """The peak over MEMORY_STEPS steps of `trainer` (its breakdown rows are dropped); then
        the allocator set for timing and the timed steps' peak tracked (`timed_peak`)."""
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.allocator_fixed = _mallopt(_MMAP_MIN)
            self.reset_ok = _reset_peak()
            self.setup_kib = proc_status_kib("VmRSS")
        for _ in range(MEMORY_STEPS):
            trainer.step()
            trainer.flush()
        trainer.take_rows()
        out = self.result()
        if not self.cuda:
            _mallopt(_MMAP_MAX, 2 * _MMAP_MAX)
            _reset_peak()
        return out

    def timed_peak(self) -> dict:
        """After the timed steps: their peak (CPU: VmHWM since `measure` ended, less the bare RSS)."""
        if self.cuda:
            return {}
        peak = proc_status_kib("VmHWM")
        if peak is None or self.bare_kib is None:
            return {}
        return {"timed_peak_memory_bytes": max(0, peak - self.bare_kib) * 1024}

    def result(self) -> dict:
        if self.cuda:
            return {"peak_memory_bytes": int(torch.cuda.max_memory_allocated(self.device)),
                    "memory_method": f"torch.cuda.max_memory_allocated over {MEMORY_STEPS} steps "
                                     "before the timed ones"}
        peak = proc_status_kib("VmHWM")
        if peak is None or self.bare_kib is None:
            return {"peak_memory_bytes": None, "memory_method": "no /proc/self/status"}
        return {"peak_memory_bytes": max(0, peak - self.bare_kib) * 1024,
                "peak_rss_bytes": peak * 1024, "bare_rss_bytes": self.bare_kib * 1024,
                "setup_rss_bytes": (self.setup_kib or 0) * 1024,
                "memory_method": (f"VmHWM over {MEMORY_STEPS} steps before the timed ones"
                                  + (" (reset there)" if self.reset_ok else
                                     " and set-up (clear_refs refused)")
                                  + (", mmap threshold 128 KiB" if self.allocator_fixed else "")
                                  + ", minus the bare worker's VmRSS")}
