"""Facts about this host that several layers ask: the cores this process may use and whether the CPU
computes a precision natively. A leaf: it imports nothing of nnscale and never torch.
"""

from __future__ import annotations

import os
from functools import cache

# CPU instruction-set flags (Linux /proc/cpuinfo names) that give native low-precision arithmetic:
# AVX512-BF16 and AMX-BF16 for bf16; AVX512-FP16 and AMX-FP16 for fp16 (Intel 64 and IA-32
# Architectures Software Developer's Manual, vol. 1, ch. 5 and 18). Without them oneDNN emulates
# the format by converting to fp32, which runs but is slower than fp32 itself.
NATIVE_CPU_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return len(os.sched_getaffinity(0))  # honours taskset and cgroup cpusets
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@cache
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_native(precision: str) -> bool:
    """Whether this CPU computes `precision` natively (fp32 always does)."""
    flags = NATIVE_CPU_FLAGS.get(precision)
    return flags is None or bool(cpu_flags() & set(flags))
