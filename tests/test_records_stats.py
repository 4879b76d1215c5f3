"""The typed statistics record: one name per value, a versioned dict form that round-trips, and
the flat dicts of older releases read into it (records_stats.py, records_stats_legacy.py)."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import pytest

from nnscale.records import DDPOptions, Measurement, Workload
from nnscale.records_stats import BLOCKS, OPTIONAL_BLOCKS, STATS_VERSION, Stats
from nnscale.records_stats_legacy import ALIASES

W = Workload("test-tiny-mlp", "training", 8, (3, 8, 8), world_size=2, kind="distributed",
             strategy="ddp", ddp=DDPOptions())


def _value(hint: str, i: int):
    """A distinct value of the field's type."""
    if "bool" in hint:
        return i % 2 == 0
    if "dict" in hint:
        return {"k": i, "nested": [i, i + 1]}
    if "tuple[tuple" in hint:
        return ((float(i), i + 0.5), (i + 1.0,))
    if "tuple[str" in hint:
        return (f"s{i}", f"t{i}")
    if "tuple[int" in hint:
        return (i, i + 1)
    if "tuple" in hint:
        return (i + 0.25, i + 0.75)
    if "str" in hint:
        return f"text {i}"
    if hint.startswith("Int") or hint.startswith("int"):
        return i
    return i + 0.125


def _full() -> Stats:
    """Every field of every block set to a distinct non-None value."""
    blocks, i = {}, 0
    for name, kind in {**BLOCKS, **OPTIONAL_BLOCKS}.items():
        hints = {f.name: str(f.type) for f in fields(kind)}
        kw = {}
        for field_name, hint in hints.items():
            i += 1
            kw[field_name] = _value(hint, i)
        blocks[name] = kind(**kw)
    return Stats(**blocks)


def test_every_field_round_trips_through_the_versioned_json_form():
    full = _full()
    d = json.loads(json.dumps(full.to_dict()))
    assert d["version"] == STATS_VERSION and set(d) == {"version", *BLOCKS, *OPTIONAL_BLOCKS}
    assert Stats.from_dict(d) == full
    m = Measurement(W, "ok", samples_ms=(1.0, 2.0), stats=full)
    assert Measurement.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def test_an_empty_record_is_the_version_alone_and_reads_back():
    assert Stats().to_dict() == {"version": STATS_VERSION}
    assert Stats.from_dict(Stats().to_dict()) == Stats() == Stats.from_dict({}) == Stats.from_dict(None)
    assert Measurement(W, "oom", error="out of memory").stats == Stats()


def test_non_finite_values_survive_the_round_trip():
    s = Stats.from_dict({"rel_ci": math.nan, "peak_flop_per_s": math.inf})
    back = Stats.from_dict(json.loads(json.dumps(s.to_dict())))
    assert math.isnan(back.timing.rel_ci) and back.compute.peak_flop_per_s == math.inf


def test_the_several_old_names_of_one_value_read_into_one_field():
    sweep = {"step_time_ms": 2.5, "step_time_ms_median": 2.5, "samples_per_s": 3200.0,
             "samples_per_s_median": 3200.0, "step_time_ms_p50": 2.4, "latency_ms_p50": 2.4}
    ddp = {"median_ms": 2.5, "step_time_ms": 2.5, "p50_ms": 2.4, "n": 40, "nnodes": 1}
    allreduce = {"time_ms": 2.5, "median_ms": 2.5, "step_time_ms": 2.5, "size_bytes": 1024}
    for old in (sweep, ddp, allreduce):
        s = Stats.from_dict(old)
        assert s.timing.median_ms == 2.5 and s.timing.p50_ms == (2.4 if "p50_ms" in old or
                                                                  "step_time_ms_p50" in old else None)
    assert Stats.from_dict(sweep).throughput.samples_per_s == 3200.0
    assert Stats.from_dict(ddp).timing.iterations == 40 and Stats.from_dict(ddp).launch.nnodes == 1
    assert Stats.from_dict(allreduce).allreduce.size_bytes == 1024
    assert Stats.from_dict({"bandwidth_cap_bytes_per_s": 25e6}).launch.bandwidth_cap_bit_per_s == 200e6
    assert Stats.from_dict({"bucket_cap_mb": 4.0}).distributed.ddp_options == {"bucket_mb": 4.0}


def test_an_unknown_key_or_names_that_disagree_are_refused_not_dropped():
    with pytest.raises(ValueError, match="'best_guess'"):
        Stats.from_dict({"step_time_ms": 1.0, "best_guess": 2.0})
    with pytest.raises(ValueError, match="disagree"):
        Stats.from_dict({"step_time_ms": 1.0, "median_ms": 1.5})
    with pytest.raises(ValueError, match="timing.speed"):
        Stats.from_dict({"version": STATS_VERSION, "timing": {"speed": 1.0}})
    with pytest.raises(ValueError, match="reads up to"):
        Stats.from_dict({"version": STATS_VERSION + 1})


def test_every_field_has_exactly_one_set_of_old_names():
    """The legacy table covers the record: each field is reachable, no old key maps twice."""
    targets = {f"{b}.{f.name}" for b, kind in {**BLOCKS, **OPTIONAL_BLOCKS}.items() for f in fields(kind)}
    assert set(ALIASES) == targets
    keys = [k for names in ALIASES.values() for k in names]
    assert len(keys) == len(set(keys))
