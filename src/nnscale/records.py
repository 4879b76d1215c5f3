"""Core record types shared by the measurement engine, the store, prediction and reporting.

Pure Python (no torch): `predict` and `report` work on these without importing a framework.
A record is immutable and self-describing: a `Measurement` carries its `Workload`, and the store
attaches the run's `Environment`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields

MODES = ("inference", "training")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
# What became of a point. "unstable": measured, but the CI target was not met within the budget.
STATUSES = ("ok", "unstable", "oom", "error", "timeout")


@dataclass(frozen=True, slots=True)
class Workload:
    """What was run: everything that changes a measurement's meaning."""

    model: str
    mode: str
    batch_size: int  # per worker
    input_shape: tuple[int, ...]  # (C, H, W) of one sample
    device: str = "cpu"  # "cpu" or "cuda:N"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    threads: int = 0  # torch intra-op threads; 0 = not set
    framework: str = "torch"
    world_size: int = 1
    # The data-parallel strategy of a distributed point ("ddp", "fsdp"); "" for one process.
    strategy: str = ""

    # Fields added after points were first stored: left out of the key while at their default, so
    # a point stored before the field existed keeps its key (and resume still finds it).
    LATER_FIELDS = ("strategy",)

    def key(self) -> str:
        """A stable identity, used to skip finished points on resume."""
        d = asdict(self)
        for name in self.LATER_FIELDS:
            if d[name] == _DEFAULTS[name]:
                del d[name]
        blob = json.dumps(d, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict) -> Workload:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["input_shape"] = tuple(kw["input_shape"])
        return cls(**kw)


_DEFAULTS = {f.name: f.default for f in fields(Workload)}


def strategy_of(w: Workload) -> str:
    """The point's data-parallel strategy; a DDP point stored before `strategy` existed says so
    only in its framework tag (torch-ddp[...])."""
    return w.strategy or ("ddp" if w.framework.startswith("torch-ddp") else "")


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measured point. Times in milliseconds, rates per second, memory in bytes."""

    workload: Workload
    status: str
    samples_ms: tuple[float, ...] = ()  # per-iteration step times after warm-up
    stats: dict = field(default_factory=dict)  # named statistics, units in the key names
    error: str = ""  # for oom / error / timeout: what happened, one line

    def to_dict(self) -> dict:
        return {
            "workload": asdict(self.workload),
            "status": self.status,
            "samples_ms": list(self.samples_ms),
            "stats": dict(self.stats),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        return cls(
            workload=Workload.from_dict(d["workload"]),
            status=d["status"],
            samples_ms=tuple(d.get("samples_ms", ())),
            stats=dict(d.get("stats", {})),
            error=d.get("error", ""),
        )
