"""Core record types shared by the measurement engine, the store, prediction and reporting.

Pure Python (no torch): `predict` and `report` work on these without importing a framework.
A record is immutable and self-describing: a `Measurement` carries its `Workload`, and the store
attaches the run's `Environment`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields

from nnscale.records_stats import Stats

from nnscale.linkcap import rate_bit_per_s, rate_text

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


# What kind of point a workload is (docs/distributed.md, "The workload's fields"): a one-process
# point of a sweep or tune; one world size of a data-parallel training run (`strategy` says which:
# "ddp" or "fsdp"); one message size of the all-reduce benchmark.
KINDS = ("sweep", "distributed", "allreduce")
SWEEP, DISTRIBUTED, ALLREDUCE = KINDS

# Workload fields added after points were first stored, left out of the key while at their default:
# a point stored before a field existed keeps its key, so a resumed run still finds it.
_KEY_OMITS_AT_DEFAULT = {"activation_checkpointing": False, "strategy": "", "kind": SWEEP,
                         "nnodes": 1, "ddp": None, "link_cap_bit_per_s": None,
                         "link_cap_burst_bytes": None, "message_bytes": 0, "compute_before_ms": 0.0,
                         "concurrent_copies": 1}


@dataclass(frozen=True, slots=True)
class DDPOptions:
    """DistributedDataParallel's options a DDP point ran with (torch's defaults here)."""

    # In the order the framework tag of older rows listed them (`engine` renders that label).
    bucket_mb: float = 25.0  # bucket_cap_mb
    grad_as_bucket_view: bool = False  # gradient_as_bucket_view
    static_graph: bool = False
    comm_hook: str = "none"  # "none", "fp16", "bf16": the gradient compression hook


@dataclass(frozen=True, slots=True)
class Workload:
    """What was run: everything that changes a measurement's meaning."""

    model: str
    mode: str
    batch_size: int  # per worker
    input_shape: tuple[int, ...]  # (C, H, W) of one sample
    device: str = "cpu"  # "cpu" or "cuda:N"
    precision: str = "fp32"  # an all-reduce point: the buffer's dtype
    channels_last: bool = False
    compile: bool = False
    threads: int = 0  # torch intra-op threads; 0 = not set
    framework: str = "torch"
    world_size: int = 1  # nnodes x nproc_per_node
    activation_checkpointing: bool = False  # language models: recompute each block in backward
    # The data-parallel strategy of a distributed point ("ddp", "fsdp"); "" for one process.
    strategy: str = ""
    kind: str = SWEEP  # one of KINDS
    nnodes: int = 1  # the nodes the world_size workers were spread over, evenly
    ddp: DDPOptions | None = None  # a DDP point's options; None for every other kind
    # The `tc tbf` cap the link was run under (recorded, not set, by nnscale; linkcap.py's units).
    link_cap_bit_per_s: float | None = None
    link_cap_burst_bytes: float | None = None  # that tbf's bucket, when recorded
    message_bytes: int = 0  # an all-reduce point: the buffer all-reduced, bytes
    # An all-reduce point: the busy compute every rank ran before each timed call (0: back to back,
    # as nccl-tests times them). A DDP step issues its buckets after forward and backward, and on a
    # CPU VM a call after compute costs more (bench/allreduce_patterns.py), so it is a workload field.
    compute_before_ms: float = 0.0
    # A loaded reference (`nnscale scale --loaded-reference`): this one-worker step ran as N
    # independent copies at once, each on the cores a worker of an N-worker point has, with no
    # communication between them. Co-located workers share the node's memory bandwidth and caches;
    # the lone reference (1) does not: on the 2-core VMs the workers of a 2-worker point computed
    # 10-24 % slower than the lone worker (docs/benchmarks.md), which no term of the model carried.
    concurrent_copies: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Workload.kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if (self.kind == DISTRIBUTED) != bool(self.strategy):
            raise ValueError("a distributed point has a strategy (ddp or fsdp), no other kind has one")
        if self.nnodes < 1 or self.world_size % self.nnodes:
            raise ValueError(f"world_size {self.world_size} does not spread over {self.nnodes} nodes")
        if self.concurrent_copies < 1 or (self.concurrent_copies > 1 and (
                self.kind != DISTRIBUTED or self.world_size != 1)):
            raise ValueError("concurrent_copies > 1 is a loaded reference: a distributed point of "
                             "world size 1")

    @property
    def loaded(self) -> bool:
        """A loaded reference (concurrent_copies > 1), not a lone worker nor a data-parallel point."""
        return self.concurrent_copies > 1

    @property
    def nproc_per_node(self) -> int:
        return self.world_size // self.nnodes

    @property
    def engine(self) -> str:
        """The point's engine in words, for tables and labels (rendered, never parsed back):
        'torch' for a sweep; a distributed or all-reduce point adds the strategy or the collective
        backend and what sets it apart, e.g. 'torch-ddp[nodes=2,tbf=200mbit,bucket_mb=1.0]'."""
        if self.kind == SWEEP:
            return self.framework
        what = self.strategy if self.kind == DISTRIBUTED else (
            "nccl" if self.device.startswith("cuda") else "gloo")
        tags = [f"nodes={self.nnodes}"] if self.nnodes > 1 else []
        if self.link_cap_bit_per_s:
            tags.append(f"tbf={rate_text(self.link_cap_bit_per_s)}")
        if self.concurrent_copies > 1:
            tags.append(f"concurrent={self.concurrent_copies}")
        if self.compute_before_ms:
            tags.append(f"compute_before={self.compute_before_ms:g}ms")
        if self.ddp is not None:
            tags += [f"{f.name}={getattr(self.ddp, f.name)}" for f in fields(DDPOptions)
                     if getattr(self.ddp, f.name) != f.default]
        return f"{self.framework}-{what}" + (f"[{','.join(tags)}]" if tags else "")

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
    def from_dict(cls, d: dict, stats: dict | None = None) -> Workload:
        """A workload as stored (`asdict`). One stored before the explicit fields existed (no
        `kind`) is upgraded from its framework tag, and `stats` (the point's statistics) supply
        the cap's bucket it recorded there: see `upgrade_legacy`."""
        if "kind" not in d:
            d = upgrade_legacy(d, stats or {})
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["input_shape"] = tuple(kw["input_shape"])
        if isinstance(kw.get("ddp"), dict):
            kw["ddp"] = DDPOptions(**kw["ddp"])
        return cls(**kw)


_LEGACY_TAG = re.compile(r"^(?P<framework>[a-z]+)-(?P<engine>[a-z0-9]+)(?:\[(?P<tags>[^\]]*)\])?$")
_LEGACY_ITEMSIZE = {"fp32": 4, "bf16": 2, "fp16": 2}  # the all-reduce benchmark's dtypes
# Stats keys older points recorded their cap under, and the factor to bit/s.
_LEGACY_CAP_KEYS = {"bandwidth_cap_bit_per_s": 1.0, "tc_rate_bit_per_s": 1.0,
                    "bandwidth_cap_bytes_per_s": 8.0}


def upgrade_legacy(d: dict, stats: dict) -> dict:
    """A stored workload of the form before the explicit fields, in the current form. The only place
    a configuration string is read: when a row is read (`from_dict`; a store that rewrites its rows
    on open through from_dict/to_dict does it once). The older forms, as nnscale wrote them:
    - a data-parallel point: framework `torch-ddp[...]` / `torch-fsdp[...]`, its tags `nodes=N`,
      `tbf=RATE` (tc units) and DDP's non-default options (`bucket_mb=1.0,static_graph=True,...`);
      points stored before `strategy` existed say "ddp" only there;
    - an all-reduce point: model "allreduce", framework `torch-gloo` / `torch-nccl` with the same
      `nodes`/`tbf` tags, and the buffer as input_shape (numel,) of the precision's dtype.
    The cap's bucket was only in the stats (bandwidth_cap_burst_bits)."""
    out = dict(d)
    out.setdefault("strategy", "")
    tag = _LEGACY_TAG.match(str(d.get("framework", "")))
    if tag is None:  # a sweep point: nothing was encoded
        return out
    items = dict(t.split("=", 1) for t in (tag["tags"] or "").split(",") if "=" in t)
    out["framework"] = tag["framework"]
    out["nnodes"] = int(items.pop("nodes", stats.get("nnodes") or 1))
    rate = items.pop("tbf", None)
    cap = rate_bit_per_s(rate) if rate else next(
        (float(stats[k]) * f for k, f in _LEGACY_CAP_KEYS.items()
         if isinstance(stats.get(k), (int, float)) and stats[k] > 0), None)
    out["link_cap_bit_per_s"] = cap
    burst = stats.get("bandwidth_cap_burst_bits")
    out["link_cap_burst_bytes"] = (float(burst) / 8 if cap and isinstance(burst, (int, float))
                                   and burst > 0 else None)
    if d.get("model") == ALLREDUCE:
        shape = tuple(d.get("input_shape") or (1,))
        out.update(kind=ALLREDUCE, strategy="", input_shape=(),
                   message_bytes=int(shape[0]) * _LEGACY_ITEMSIZE.get(d.get("precision"), 4))
        return out
    out.update(kind=DISTRIBUTED, strategy=out["strategy"] or tag["engine"])
    if out["strategy"] == "ddp":
        types = {f.name: f.type for f in fields(DDPOptions)}
        opts = {k: (v == "True" if types[k] == "bool" else float(v) if types[k] == "float" else v)
                for k, v in items.items() if k in types}
        out["ddp"] = asdict(DDPOptions(**opts))
    return out


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
            workload=Workload.from_dict(d["workload"], d.get("stats")),
            status=d["status"],
            samples_ms=tuple(d.get("samples_ms", ())),
            stats=Stats.from_dict(d.get("stats")),
            error=d.get("error", ""),
        )
