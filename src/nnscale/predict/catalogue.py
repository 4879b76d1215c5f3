"""The hardware catalogue: devices (peak FLOP/s, memory) and links (alpha, bandwidth), each with a source.

The shipped catalogue is `catalogue.yaml` beside this file (package data). `load_catalogue(path)`
adds a user's YAML file of the same shape on top: its entries add to the shipped ones or replace
them by name. Every problem with a file (it does not parse, an entry misses a field, a value is not
a positive number) is a one-line `UserError` naming the file, the entry and the field.

Units inside nnscale are SI: FLOP/s, bytes/s, bytes, seconds. The YAML uses TFLOP/s, GB/s (1e9
bytes), GB and microseconds because that is how data sheets print them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from nnscale.errors import UserError
from nnscale.records import PRECISIONS

SHIPPED = "catalogue.yaml"
_TOP = {"devices", "links", "sources"}
_DEVICE_FIELDS = {"description", "peak_tflops", "memory_bandwidth_gb_per_s", "memory_gb", "intra_link",
                  "inter_link", "nics_per_node"}
_LINK_FIELDS = {"description", "bandwidth_gb_per_s", "alpha_us", "efficiency"}


@dataclass(frozen=True, slots=True)
class Device:
    """A compute device. `peak_flops` maps precision -> FLOP/s (dense)."""

    name: str
    description: str
    peak_flops: dict[str, float]
    memory_bandwidth: float  # bytes/s
    memory_bytes: float
    intra_link: str = ""  # default link between the devices of one node
    inter_link: str = ""  # default link between nodes: the device's reference system (a DGX)
    nics_per_node: int = 1  # that system's NICs per node
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def peak(self, precision: str) -> float:
        if precision not in self.peak_flops:
            known = ", ".join(sorted(self.peak_flops))
            raise UserError(f"device {self.name} has no peak for precision {precision!r} in the "
                            f"catalogue; it has: {known}")
        return self.peak_flops[precision]


@dataclass(frozen=True, slots=True)
class Link:
    """A link of the alpha-beta model: per-step latency `alpha_s` and per-direction `bandwidth`
    (bytes/s) at one endpoint; an all-reduce reaches `efficiency` x bandwidth."""

    name: str
    alpha_s: float
    bandwidth: float
    efficiency: float = 1.0
    description: str = ""
    sources: dict[str, str] = field(default_factory=dict, compare=False)
    # All-reduces measured over this link, (ranks, bytes, seconds): a fitted link carries its run's
    # (calibrate.CommParams.link), and at those ranks, between the smallest and the largest size,
    # comm.measured_time_s interpolates them instead of the alpha-beta line. A catalogue link has none.
    measured: tuple[tuple[int, float, float], ...] = ()

    @property
    def effective_bandwidth(self) -> float:
        return self.bandwidth * self.efficiency

    def __post_init__(self) -> None:
        _positive(self.bandwidth, f"link {self.name}: bandwidth", allow_inf=True)
        _positive(self.alpha_s, f"link {self.name}: alpha", allow_zero=True)
        if not (0 < self.efficiency <= 1):
            raise UserError(f"link {self.name}: efficiency must be in (0, 1], got {self.efficiency!r}")


@dataclass(frozen=True, slots=True)
class Catalogue:
    devices: dict[str, Device]
    links: dict[str, Link]

    def device(self, name: str) -> Device:
        key = name.strip().lower()
        if key not in self.devices:
            raise UserError(f"unknown device {name!r}; known devices: {', '.join(sorted(self.devices))}"
                            " (or measured:RUN; add your own with --catalogue FILE.yaml)")
        return self.devices[key]

    def link(self, name: str) -> Link:
        key = name.strip().lower()
        if key not in self.links:
            raise UserError(f"unknown link {name!r}; known links: {', '.join(sorted(self.links))}"
                            " (add your own with --catalogue FILE.yaml)")
        return self.links[key]


def _positive(value, what: str, allow_inf: bool = False, allow_zero: bool = False) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number and (value > 0 or (allow_zero and value == 0)) and (allow_inf or math.isfinite(value))
    if not ok:
        raise UserError(f"{what} must be a {'number >= 0' if allow_zero else 'positive number'}, got {value!r}")
    return float(value)


def _value(raw, where: str, default_source: str, allow_zero: bool = False) -> tuple[float, str]:
    """[value, "source"], {value: v, source: s} or a bare number -> (value, source)."""
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and isinstance(raw[1], str):
        return _positive(raw[0], where, allow_zero=allow_zero), raw[1]
    if isinstance(raw, dict) and set(raw) <= {"value", "source"} and "value" in raw:
        return _positive(raw["value"], where, allow_zero=allow_zero), str(raw.get("source", default_source))
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return _positive(raw, where, allow_zero=allow_zero), default_source
    raise UserError(f"{where} must be a number or [number, \"source\"], got {raw!r}")


def _fields(entry, where: str, allowed: set[str], required: set[str]) -> dict:
    if not isinstance(entry, dict):
        raise UserError(f"{where} must be a mapping of fields, got {type(entry).__name__}")
    unknown = set(entry) - allowed
    if unknown:
        raise UserError(f"{where} has unknown field {sorted(unknown)[0]!r}; fields: {', '.join(sorted(allowed))}")
    missing = required - set(entry)
    if missing:
        raise UserError(f"{where} misses field {sorted(missing)[0]!r}")
    return entry


def _device(name: str, entry, origin: str) -> Device:
    where = f"catalogue {origin}: device {name!r}"
    entry = _fields(entry, where, _DEVICE_FIELDS, {"peak_tflops", "memory_bandwidth_gb_per_s", "memory_gb"})
    peaks_raw = entry["peak_tflops"]
    if not isinstance(peaks_raw, dict) or not peaks_raw:
        raise UserError(f"{where}: peak_tflops must map precisions ({', '.join(PRECISIONS)}) to TFLOP/s")
    sources, peaks = {}, {}
    for prec, raw in peaks_raw.items():
        if prec not in PRECISIONS:
            raise UserError(f"{where}: unknown precision {prec!r} in peak_tflops; known: {', '.join(PRECISIONS)}")
        tflops, sources[f"peak_tflops.{prec}"] = _value(raw, f"{where}: peak_tflops.{prec}", origin)
        peaks[prec] = tflops * 1e12
    bw, sources["memory_bandwidth_gb_per_s"] = _value(entry["memory_bandwidth_gb_per_s"],
                                                      f"{where}: memory_bandwidth_gb_per_s", origin)
    mem, sources["memory_gb"] = _value(entry["memory_gb"], f"{where}: memory_gb", origin)
    nics = 1
    if "nics_per_node" in entry:
        n, sources["nics_per_node"] = _value(entry["nics_per_node"], f"{where}: nics_per_node", origin)
        if n != int(n):
            raise UserError(f"{where}: nics_per_node must be a whole number, got {n:g}")
        nics = int(n)
    return Device(name=name, description=str(entry.get("description", name)), peak_flops=peaks,
                  memory_bandwidth=bw * 1e9, memory_bytes=mem * 1e9,
                  intra_link=str(entry.get("intra_link", "")).lower(),
                  inter_link=str(entry.get("inter_link", "")).lower(), nics_per_node=nics, sources=sources)


def _link(name: str, entry, origin: str) -> Link:
    where = f"catalogue {origin}: link {name!r}"
    entry = _fields(entry, where, _LINK_FIELDS, {"bandwidth_gb_per_s", "alpha_us"})
    sources = {}
    bw, sources["bandwidth_gb_per_s"] = _value(entry["bandwidth_gb_per_s"], f"{where}: bandwidth_gb_per_s", origin)
    alpha, sources["alpha_us"] = _value(entry["alpha_us"], f"{where}: alpha_us", origin, allow_zero=True)
    eff = 1.0
    if "efficiency" in entry:
        eff, sources["efficiency"] = _value(entry["efficiency"], f"{where}: efficiency", origin)
        if eff > 1:
            raise UserError(f"{where}: efficiency must be in (0, 1], got {eff:g}")
    return Link(name=name, alpha_s=alpha * 1e-6, bandwidth=bw * 1e9, efficiency=eff,
                description=str(entry.get("description", name)), sources=sources)


def parse_catalogue(text: str, origin: str) -> Catalogue:
    """Parse one catalogue file's text; `origin` names it in messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"catalogue {origin} does not parse as YAML{at}: {first}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"catalogue {origin} must be a mapping with 'devices' and/or 'links'")
    unknown = set(data) - _TOP
    if unknown:
        raise UserError(f"catalogue {origin} has unknown section {sorted(unknown)[0]!r}; "
                        f"sections: {', '.join(sorted(_TOP))}")
    devices, links = {}, {}
    for section, build, out in (("devices", _device, devices), ("links", _link, links)):
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise UserError(f"catalogue {origin}: '{section}' must be a mapping of name -> fields")
        for name, entry in entries.items():
            out[str(name).lower()] = build(str(name).lower(), entry, origin)
    return Catalogue(devices, links)


@lru_cache(maxsize=1)
def shipped_catalogue() -> Catalogue:
    text = resources.files("nnscale.predict").joinpath(SHIPPED).read_text(encoding="utf-8")
    return parse_catalogue(text, f"(shipped {SHIPPED})")


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """The shipped catalogue, extended or overridden by the YAML file at `path` (if given)."""
    base = shipped_catalogue()
    if path is None:
        return base
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise UserError(f"cannot read catalogue {p}: {reason}") from None
    extra = parse_catalogue(text, str(p))
    return Catalogue({**base.devices, **extra.devices}, {**base.links, **extra.links})
