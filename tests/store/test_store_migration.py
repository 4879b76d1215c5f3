"""Schema version 1 stores (framework VARCHAR(32)) are migrated on open, and a DDP point whose
framework tag is longer than 32 characters is stored on both backends, measured for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from nnscale.records import Measurement, Workload
from nnscale.errors import UserError
from nnscale.store import SCHEMA_VERSION, open_store, schema

SRC = str(Path(__file__).resolve().parents[2] / "src")
LONG_TAG = "torch-ddp[grad_as_bucket_view=True,static_graph=True]"


def _engine(url: str) -> sa.Engine:
    if "://" not in url:
        return sa.create_engine(f"sqlite:///{url}")
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def _make_version_1(url: str) -> None:
    """What nnscale 1 left: framework VARCHAR(32) (PostgreSQL enforces it), schema_version 1."""
    with open_store(url) as store:
        run = store.create_run("old")
        store.add_measurement(run, Measurement(Workload("m", "training", 4, (3, 8, 8)), "ok",
                                               samples_ms=(1.0, 2.0)))
    engine = _engine(url)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE measurements ALTER COLUMN framework TYPE VARCHAR(32), "
                                 "ALTER COLUMN model TYPE VARCHAR(200), "
                                 "ALTER COLUMN device TYPE VARCHAR(64)")
        conn.exec_driver_sql("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    engine.dispose()


def test_a_version_1_store_is_migrated_and_takes_long_framework_tags(db_url):
    _make_version_1(db_url)
    w = Workload("m", "training", 8, (3, 8, 8), framework=LONG_TAG, world_size=2)
    # an imported net is named by its path, which may exceed version 1's VARCHAR(200)
    long_model = Workload("/data/" + "nets/" * 60 + "deploy.prototxt", "inference", 1, (3, 8, 8))
    with open_store(db_url, create=False) as store:
        store.add_measurement(store.run("old").id, Measurement(w, "ok", samples_ms=(3.0,)))
        store.add_measurement(store.run("old").id, Measurement(long_model, "ok", samples_ms=(3.0,)))
        points = store.measurements("old")
    assert [p.workload.framework for p in points] == ["torch", LONG_TAG, "torch"]
    assert points[2].workload.model == long_model.model and len(long_model.model) > 200
    assert points[0].samples_ms == (1.0, 2.0)  # the version-1 point is kept
    engine = _engine(db_url)
    with engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT value FROM meta WHERE key='schema_version'").scalar()
    engine.dispose()
    assert version == str(SCHEMA_VERSION) == "4"


def test_a_value_longer_than_its_column_is_refused_before_the_insert():
    # What is left bounded are keys and enumerations: one line (UserError), not a driver traceback.
    with pytest.raises(UserError, match="status .* at most 16"):
        schema.check_lengths(schema.measurements, {"status": "x" * 17}, "storing a point")
    schema.check_lengths(schema.measurements, {"model": "x" * 5000}, "storing a point")  # TEXT


@pytest.mark.slow
def test_a_ddp_point_with_a_long_framework_tag_is_stored(db_url, tmp_path):
    # Measured for real (1 gloo worker through torchrun); before schema version 2 PostgreSQL refused
    # the row after the point was measured (StringDataRightTruncation), a traceback and no point.
    env = dict(os.environ, PYTHONPATH=SRC)
    env.pop("NNSCALE_TEST_FAULT", None)
    result = subprocess.run(
        [sys.executable, "-m", "nnscale", "scale", "test-tiny-mlp", "--nproc", "1",
         "--batch-per-worker", "4", "--threads-per-worker", "1", "--budget", "0.5", "--launches", "1",
         "--grad-as-bucket-view", "--static-graph", "--db", db_url, "--run", "long"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    with open_store(db_url, create=False) as store:
        (point,) = store.measurements("long")
    # The options are workload fields now; the label they render is the tag that was too long.
    assert point.workload.engine == LONG_TAG and len(LONG_TAG) > 32
    assert point.workload.ddp.static_graph and point.workload.ddp.grad_as_bucket_view
    assert point.status in ("ok", "unstable") and point.stats.throughput.samples_per_s > 0


def test_a_version_2_row_with_the_old_flat_statistics_is_rewritten_typed(db_url):
    """Schema 3 on both backends: a row stored with the free-form dict (several names for one
    value) is rewritten in the typed form on open, and reads the same numbers."""
    old = {"step_time_ms": 2.5, "step_time_ms_median": 2.5, "median_ms": 2.5, "samples_per_s": 1600.0,
           "samples_per_s_median": 1600.0, "n": 12, "nnodes": 1, "size_bytes": 1024}
    with open_store(db_url) as store:
        run = store.create_run("flat")
        store.add_measurement(run, Measurement(Workload("m", "training", 4, (3, 8, 8)), "ok",
                                               samples_ms=(2.5,)))
    engine = _engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.update(schema.measurements).values(stats=json.dumps(old)))
        conn.exec_driver_sql("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with open_store(db_url, create=False) as store:
        (point,) = store.measurements("flat")
    with engine.connect() as conn:
        stored = json.loads(conn.execute(sa.select(schema.measurements.c.stats)).scalar())
        version = conn.exec_driver_sql("SELECT value FROM meta WHERE key='schema_version'").scalar()
    engine.dispose()
    assert version == str(SCHEMA_VERSION) and stored["version"] == 1 and stored["timing"]["median_ms"] == 2.5
    assert point.stats.timing.median_ms == 2.5 and point.stats.timing.iterations == 12
    assert point.stats.throughput.samples_per_s == 1600.0 and point.stats.launch.nnodes == 1
    assert point.stats.allreduce.size_bytes == 1024
