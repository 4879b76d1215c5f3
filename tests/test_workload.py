"""The workload's explicit fields (records.Workload): what they are, what the key covers, and the
one-time upgrade of the older stored forms, on the store written by the release before them
(tests/store/fixtures/store_v1/v1.db, copied before it is read)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import asdict, fields, replace
from pathlib import Path

import pytest

from nnscale.records import (ALLREDUCE, DISTRIBUTED, SWEEP, DDPOptions, Measurement, Workload,
                             upgrade_legacy)

V1 = Path(__file__).resolve().parent / "store" / "fixtures" / "store_v1" / "v1.db"


@pytest.fixture
def v1_rows(tmp_path) -> dict[str, list[tuple[str, dict, dict]]]:
    """Per run of the fixture: (stored key, stored workload, stored stats) of each point."""
    db = tmp_path / "v1.db"
    shutil.copy(V1, db)
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT r.name, m.workload_key, m.workload, m.stats FROM measurements m "
                        "JOIN runs r ON r.id = m.run_id ORDER BY m.id").fetchall()
    conn.close()
    out: dict[str, list] = {}
    for run, key, w, s in rows:
        out.setdefault(run, []).append((key, json.loads(w), json.loads(s)))
    return out


def _ddp(**kw) -> Workload:
    return Workload("test-tiny-mlp", "training", 8, (3, 8, 8), threads=1, world_size=2,
                    kind=DISTRIBUTED, strategy="ddp", ddp=DDPOptions(**kw))


def test_a_sweep_point_keeps_the_key_the_fixture_stored(v1_rows):
    sweeps = [r for run in ("fx", "fx-lm") for r in v1_rows[run]]
    assert len(sweeps) == 5
    for key, w, stats in sweeps:
        upgraded = Workload.from_dict(w, stats)
        assert upgraded.kind == SWEEP and upgraded.key() == key
        assert Workload.from_dict(asdict(upgraded)).key() == key  # and once rewritten, too


@pytest.mark.parametrize("option", [f.name for f in fields(DDPOptions)])
def test_every_ddp_option_is_in_the_key(option):
    other = {"bucket_mb": 1.0, "static_graph": True, "grad_as_bucket_view": True, "comm_hook": "fp16"}
    assert _ddp().key() != _ddp(**{option: other[option]}).key()


@pytest.mark.parametrize("change", [dict(nnodes=2), dict(link_cap_bit_per_s=2e8),
                                    dict(link_cap_bit_per_s=2e8, link_cap_burst_bytes=25600.0),
                                    dict(strategy="fsdp", ddp=None), dict(kind=SWEEP, strategy="",
                                                                         ddp=None, world_size=1)])
def test_layout_link_and_strategy_are_in_the_key(change):
    base = replace(_ddp(), link_cap_bit_per_s=2e8) if "link_cap_burst_bytes" in change else _ddp()
    assert replace(_ddp(), **change).key() != base.key()


def test_each_all_reduce_size_and_dtype_is_its_own_workload():
    w = Workload(ALLREDUCE, "training", 1, (), world_size=2, kind=ALLREDUCE, message_bytes=1024)
    assert w.key() != replace(w, message_bytes=2048).key() != replace(w, precision="bf16").key()
    assert w.engine == "torch-gloo" and replace(w, device="cuda").engine == "torch-nccl"


def test_the_fixture_ddp_run_is_upgraded_to_fields(v1_rows):
    (k1, w1, s1), (k2, w2, s2) = v1_rows["fx-ddp"]
    old_tag = "torch-ddp[tbf=200mbit,bucket_mb=1.0,static_graph=True]"
    assert w1["framework"] == w2["framework"] == old_tag
    for w, s, world in ((w1, s1, 1), (w2, s2, 2)):
        u = Workload.from_dict(w, s)
        assert (u.kind, u.strategy, u.framework, u.world_size) == (DISTRIBUTED, "ddp", "torch", world)
        assert u.ddp == DDPOptions(bucket_mb=1.0, static_graph=True)
        assert (u.nnodes, u.nproc_per_node) == (1, world)
        assert (u.link_cap_bit_per_s, u.link_cap_burst_bytes) == (2e8, None)
        assert u.engine == old_tag  # the report's label is what it was; nothing parses it now
    assert Workload.from_dict(w1, s1).key() != k1  # the key covers the new fields: a new key


def test_the_fixture_fsdp_and_all_reduce_runs_are_upgraded(v1_rows):
    ((_, w, s),) = v1_rows["fx-fsdp"]
    u = Workload.from_dict(w, s)
    assert (u.kind, u.strategy, u.framework, u.ddp, u.engine) == (DISTRIBUTED, "fsdp", "torch", None,
                                                                  "torch-fsdp")
    sizes = []
    for _, w, s in v1_rows["fx-ar"]:
        assert w["framework"] == "torch-gloo" and w["model"] == "allreduce"
        u = Workload.from_dict(w, s)
        assert (u.kind, u.framework, u.input_shape, u.precision) == (ALLREDUCE, "torch", (), "fp32")
        assert u.message_bytes == s["size_bytes"]  # numel x 4 bytes, what the workers all-reduced
        sizes.append(u.message_bytes)
    assert sizes == [1024, 65536]


def test_older_forms_not_in_the_fixture_are_upgraded_too():
    base = {"model": "resnet50", "mode": "training", "batch_size": 4, "input_shape": [3, 8, 8],
            "device": "cpu", "precision": "fp32", "world_size": 4}
    # Before `strategy` existed: only the tag said DDP; a cap with its bucket in the stats.
    tag = "torch-ddp[nodes=2,tbf=1gbit,grad_as_bucket_view=True,static_graph=True,comm_hook=fp16]"
    u = Workload.from_dict({**base, "framework": tag},
                           {"bandwidth_cap_bit_per_s": 1e9, "bandwidth_cap_burst_bits": 1024000.0})
    assert u.engine == tag  # the label the report showed, in the order it showed it
    assert (u.strategy, u.nnodes, u.nproc_per_node, u.link_cap_bit_per_s) == ("ddp", 2, 2, 1e9)
    assert u.ddp == DDPOptions(grad_as_bucket_view=True, static_graph=True, comm_hook="fp16")
    assert u.link_cap_burst_bytes == 128000.0
    # An NCCL all-reduce of bf16 over 2 nodes, its cap only in an older stats name (bytes/s).
    ar = {**base, "model": "allreduce", "batch_size": 1, "input_shape": [512], "device": "cuda",
          "precision": "bf16", "framework": "torch-nccl[nodes=2]"}
    u = Workload.from_dict(ar, {"bandwidth_cap_bytes_per_s": 1.25e8})
    assert (u.kind, u.message_bytes, u.nnodes, u.link_cap_bit_per_s) == (ALLREDUCE, 1024, 2, 1e9)
    assert u.engine == "torch-nccl[nodes=2,tbf=1gbit]"
    # A sweep of another framework: nothing encoded, nothing changed.
    assert upgrade_legacy({**base, "framework": "tensorflow"}, {})["framework"] == "tensorflow"


def test_a_measurement_round_trips_with_its_fields():
    w = replace(_ddp(bucket_mb=4.0, comm_hook="bf16"), nnodes=2, link_cap_bit_per_s=5e7,
                link_cap_burst_bytes=6400.0)
    m = Measurement(w, "ok", (1.0,), {"samples_per_s": 3.0})
    back = Measurement.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back.workload == w and back.workload.key() == w.key()


@pytest.mark.parametrize("bad", [dict(kind="ddp"), dict(kind=DISTRIBUTED), dict(strategy="ddp"),
                                 dict(world_size=3, nnodes=2)])
def test_an_inconsistent_workload_is_refused(bad):
    with pytest.raises(ValueError):
        Workload("m", "training", 1, (3, 8, 8), **{"world_size": 2, **bad})


def test_a_loaded_reference_is_its_own_workload_and_keeps_older_keys():
    lone = replace(_ddp(), world_size=1)
    busy = replace(lone, concurrent_copies=2)
    assert busy.loaded and not lone.loaded and busy.key() != lone.key()
    assert busy.engine == "torch-ddp[concurrent=2]" and lone.engine == "torch-ddp"
    # 1, the default, is left out of the key: a point stored before the field keeps its key
    stored = asdict(lone)
    del stored["concurrent_copies"]
    assert Workload.from_dict(stored).key() == lone.key()
    back = Measurement.from_dict(json.loads(json.dumps(Measurement(busy, "ok").to_dict())))
    assert back.workload == busy


@pytest.mark.parametrize("bad", [dict(concurrent_copies=0), dict(concurrent_copies=2, world_size=2),
                                 dict(concurrent_copies=2, kind=SWEEP, strategy="", ddp=None)])
def test_copies_belong_to_a_world_size_1_distributed_point(bad):
    with pytest.raises(ValueError):
        replace(_ddp(), **{"world_size": 1, **bad})
