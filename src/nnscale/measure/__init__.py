"""The measurement engine: how fast a model runs, point by point, each in a fresh worker process.

- `methodology`: `MeasurePolicy`, `measure` (warm-up until steady, then repeat until the CI target
  or the budget), the `Timer` protocol — the contract the data-parallel engine builds on.
- `backend` / `torch_backend`: the narrow seam to a framework (timed step, timer, memory probe).
- `point`, `worker`, `runner`: one point in-process, the worker process, and the parent side.
- `sweep` (`run_sweep`), `tune` (`run_tune`), `device` (`measure_device`): what the CLI calls.

Only `methodology` is imported here: the rest loads a framework and is imported where it is used.
"""

from nnscale.measure.methodology import CpuTimer, MeasurePolicy, Timed, Timer, measure

__all__ = ["CpuTimer", "MeasurePolicy", "Timed", "Timer", "measure"]
