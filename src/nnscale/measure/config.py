"""`MeasureConfig`: what `sweep` and `tune` both measure (model, modes, device, framework, threads,
input) and the limits of their workers (policy, timeouts, memory cap, interference threshold).

`SweepConfig` (measure/sweep.py) and `TuneConfig` (measure/tune.py) add their own fields to it. Values
are checked when a config is made (`__post_init__`, UserError: one line, exit code 2), so a config
built from Python, from the CLI or read back from a stored run (`from_dict`, `--resume RUN`) is
checked the same way; what needs the machine (device, precision, threads) is checked by `resolve`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

from nnscale.errors import UserError
from nnscale.measure.forkserver import FORKED_START_S, forks
from nnscale.measure.methodology import INTERFERENCE_MAX, MeasurePolicy, check_interference_max
from nnscale.measure.runner import STARTUP_S
from nnscale.measure.validate import check_seconds
from nnscale.records import ALL_MODES


@dataclass(frozen=True, slots=True)
class MeasureConfig:
    model: str
    modes: tuple[str, ...] = ("inference",)
    device: str = "cpu"
    threads: int = 0  # 0: all usable cores, resolved when the run starts
    input_shape: tuple[int, ...] | None = None  # (C, H, W) or (S,); None: the model's own
    framework: str = "torch"
    policy: MeasurePolicy = field(default_factory=MeasurePolicy)
    timeout_s: float | None = None  # per point; None: start-up + compile + warm-up + 2 × budget
    compile_timeout_s: float = 600.0
    memory_cap_bytes: int | None = None  # per worker; None: on CPU what the machine has free
    # Warn when the load per core, others' CPU share or the steal share is above this (environment.py)
    interference_max: float = INTERFERENCE_MAX

    # Fields stored as JSON lists, made tuples again by `from_dict` (subclasses add theirs).
    TUPLE_FIELDS: ClassVar[tuple[str, ...]] = ("modes", "input_shape")

    def __post_init__(self) -> None:
        if not self.modes or any(m not in ALL_MODES for m in self.modes):
            raise UserError(f"bad modes {self.modes!r}: expected inference, training and/or decode "
                            "(language models)")
        for name, option in (("timeout_s", "--timeout"), ("compile_timeout_s", "--compile-timeout")):
            if getattr(self, name) is not None:  # finite and bounded: inf overflows communicate()
                check_seconds(getattr(self, name), option)
        if self.memory_cap_bytes is not None and not self.memory_cap_bytes > 0:
            raise UserError(f"bad memory_cap_bytes {self.memory_cap_bytes!r}: expected a positive "
                            "number")
        check_interference_max(self.interference_max)

    @property
    def point_s(self) -> float:
        """A point's expected seconds, for the progress ETA: its processes' start-up share and
        warm-up, and the budget they share."""
        p = self.policy
        forked = forks(p.worker_start, self.framework, self.device)
        start = FORKED_START_S if forked else STARTUP_S / 4
        return p.processes * (start + p.warmup_max_s) + p.budget_s

    def shared(self) -> dict:
        """The fields of this base, by name: a tune candidate is a sweep of the same ones."""
        return {f.name: getattr(self, f.name) for f in fields(MeasureConfig)}

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["policy"] = self.policy.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict):
        """The config a run stored (`to_dict`); keys this release does not know are left out."""
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        kw["policy"] = MeasurePolicy.from_dict(kw.get("policy", {}))
        for key in cls.TUPLE_FIELDS:
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        return cls(**kw)
