"""nnscale.host: this host's facts, from a real process — its CPU affinity and the CPU's flags — in
a leaf module that loads nothing else of nnscale and never torch."""

from __future__ import annotations

import os
import subprocess
import sys

from nnscale.host import NATIVE_CPU_FLAGS, cpu_flags, cpu_native, usable_cores

CHILD = ("import sys; from nnscale.host import usable_cores; print(usable_cores()); "
         "print(sorted(m for m in sys.modules if m.startswith(('nnscale.', 'torch'))))")


def _child(*prefix: str) -> list[str]:
    out = subprocess.run([*prefix, sys.executable, "-c", CHILD], capture_output=True, text=True,
                         check=True, env=dict(os.environ), timeout=60)
    return out.stdout.splitlines()


def test_usable_cores_is_this_process_affinity():
    assert usable_cores() == len(os.sched_getaffinity(0))
    cores, loaded = _child("taskset", "-c", str(min(os.sched_getaffinity(0))))
    assert cores == "1"  # a process pinned to one core may use one, whatever the machine has
    assert loaded == "['nnscale.host']"  # a leaf: nothing else of nnscale, no torch


def test_native_precisions_follow_the_cpu_flags():
    with open("/proc/cpuinfo") as f:
        flags = next((set(line.partition(":")[2].split()) for line in f
                      if line.startswith(("flags", "Features"))), set())
    assert cpu_flags() == frozenset(flags)
    assert cpu_native("fp32")
    for precision, needed in NATIVE_CPU_FLAGS.items():
        assert cpu_native(precision) == bool(flags & set(needed))
