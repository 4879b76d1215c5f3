"""Helpers shared by the measurement engine's tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

import math

from nnscale.measure.methodology import MeasurePolicy
from nnscale.records import Measurement, Workload

# Short enough for tests, strict enough to exercise the stopping rule.
# One process per point: the tests of the sweep engine are about the engine; the tests of the
# interval across processes set their own k (test_measure_processes.py).
SHORT = MeasurePolicy(target_rel_ci=0.05, budget_s=0.5, warmup_max_s=0.5, warmup_max_iters=30,
                      processes=1, max_processes=1)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def fake_point(w: Workload, status: str = "ok", samples_per_s: float | None = None,
               step_time_ms: float | None = None, device_name: str = "fake cpu") -> Measurement:
    """A measured point as a worker would return it, without measuring anything."""
    if status not in ("ok", "unstable"):
        return Measurement(w, status, error=f"fake {status}")
    rate = samples_per_s
    if rate is None:  # saturating with the batch, like a real net
        rate = 100.0 * w.batch_size / (1 + math.log2(w.batch_size))
    step = step_time_ms if step_time_ms is not None else 1000.0 * w.batch_size / rate
    stats = {"samples_per_s": rate, "step_time_ms": step, "rel_ci": 0.01, "iterations": 10,
             "peak_memory_bytes": 1000 * w.batch_size, "device_name": device_name}
    return Measurement(w, status, samples_ms=(step,) * 10, stats=stats)
