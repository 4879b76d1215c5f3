"""Core record types shared by the measurement engine, the store, prediction and reporting.

Pure Python (no torch): `predict` and `report` work on these without importing a framework.
A record is immutable and self-describing: a `Measurement` carries its `Workload`, and the store
attaches the run's `Environment`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from nnscale.records_stats import Stats

MODES = ("inference", "training")
# A language model's third mode: one new token per step from a key/value cache; its "inference" is
# the prefill, one forward pass over the whole sequence (docs/transformers.md).
DECODE = "decode"
ALL_MODES = ("inference", DECODE, "training")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
# What became of a point. "unstable": measured, but the CI target was not met within the budget.
STATUSES = ("ok", "unstable", "oom", "error", "timeout")
# The statuses of a point that has numbers: every reader of step times and rates filters on this.
MEASURED_STATUSES = ("ok", "unstable")


# Workload fields added after points were first stored, left out of the key while at their default:
# a point stored before a field existed keeps its key, so a resumed run still finds it.
_KEY_OMITS_AT_DEFAULT = {"activation_checkpointing": False, "strategy": ""}


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
    activation_checkpointing: bool = False  # language models: recompute each block in backward
    # The data-parallel strategy of a distributed point ("ddp", "fsdp"); "" for one process.
    strategy: str = ""

    def key(self) -> str:
        """A stable identity, used to skip finished points on resume. A language model's sequence
        length is its input_shape (S,), so it is part of the key."""
        d = asdict(self)
        for name, default in _KEY_OMITS_AT_DEFAULT.items():
            if d.get(name) == default:
                del d[name]
        blob = json.dumps(d, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict) -> Workload:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["input_shape"] = tuple(kw["input_shape"])
        return cls(**kw)


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
    # The typed statistics (records_stats.py). A dict given here, in the versioned form or the
    # flat form of any older release, is read by Stats.from_dict: the one way in.
    stats: Stats = Stats()
    error: str = ""  # for oom / error / timeout: what happened, one line

    def __post_init__(self) -> None:
        if not isinstance(self.stats, Stats):
            object.__setattr__(self, "stats", Stats.from_dict(self.stats))

    def to_dict(self) -> dict:
        return {
            "workload": asdict(self.workload),
            "status": self.status,
            "samples_ms": list(self.samples_ms),
            "stats": self.stats.to_dict(),
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        return cls(
            workload=Workload.from_dict(d["workload"]),
            status=d["status"],
            samples_ms=tuple(d.get("samples_ms", ())),
            stats=Stats.from_dict(d.get("stats")),
            error=d.get("error", ""),
        )
