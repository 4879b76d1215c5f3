"""Transient store errors: SQLite's write lock held by another process past the busy timeout is
retried with backoff (the write goes through once the lock is released); held for good, the
command ends with one line and exit code 2, and the points committed before are kept."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from nnscale.errors import StoreUnavailable
from nnscale.records import Measurement, Workload
from nnscale.store import open_store

SRC = str(Path(__file__).resolve().parents[2] / "src")
# Another process takes SQLite's write lock (BEGIN EXCLUSIVE) and keeps it for HOLD seconds.
HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def _point(batch: int) -> Measurement:
    return Measurement(Workload("test-tiny-mlp", "inference", batch, (1, 8, 8)), "ok",
                       samples_ms=(1.0, 1.5, float(batch)))


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.fixture
def store_with_points(tmp_path, monkeypatch):
    monkeypatch.setenv("NNSCALE_STORE_BUSY_TIMEOUT_S", "1")
    path = tmp_path / "locked.db"
    with open_store(str(path)) as store:
        run = store.create_run("before")
        for batch in (1, 2):
            store.add_measurement(run, _point(batch))
    return path, run


def test_a_lock_released_within_the_retries_lets_the_write_through(store_with_points, monkeypatch):
    path, run = store_with_points
    monkeypatch.setenv("NNSCALE_STORE_RETRY_S", "30")
    holder = _hold_lock(path, 4)
    tries = []
    try:
        start = time.monotonic()
        with open_store(str(path), create=False) as store:
            # Count the write transactions begun: more than one shows the retry, not merely
            # SQLite's own busy wait (which alone would also outlast a 4 s lock).
            sa.event.listen(store._engine, "begin", lambda conn: tries.append(1))
            store.add_measurement(run, _point(4))  # busy 1 s per try, retried until released
            waited = time.monotonic() - start
            points = store.measurements("before")
    finally:
        holder.kill()
        holder.wait()
    assert waited >= 3, waited  # it did wait for the lock, and did not fail
    assert len(tries) >= 2, tries
    assert [p.workload.batch_size for p in points] == [1, 2, 4]
    assert points[2].samples_ms == (1.0, 1.5, 4.0)


@pytest.mark.xdist_group("timing")  # a wall-clock bound: not beside the other timed tests
def test_a_lock_held_for_good_is_one_line_exit_2_and_keeps_earlier_points(store_with_points,
                                                                          monkeypatch):
    path, run = store_with_points
    holder = _hold_lock(path, 600)
    try:
        env = dict(os.environ, PYTHONPATH=SRC, NNSCALE_STORE_BUSY_TIMEOUT_S="1",
                   NNSCALE_STORE_RETRY_S="4")
        start = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "nnscale", "sweep", "test-tiny-mlp",
                                 "--batch", "1", "--db", str(path), "--run", "after"],
                                env=env, capture_output=True, text=True, timeout=120)
        seconds = time.monotonic() - start
        monkeypatch.setenv("NNSCALE_STORE_RETRY_S", "1")
        with open_store(str(path), create=False) as store:  # readers are not blocked (WAL)
            with pytest.raises(StoreUnavailable, match="storing a point .* database is locked"):
                store.add_measurement(run, _point(8))
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "creating a run" in lines[0] and "database is locked" in lines[0], lines[0]
    assert "retried for 4 s" in lines[0]
    assert seconds < 60, seconds
    with open_store(str(path), create=False) as store:
        points = store.measurements("before")
        assert [r.name for r in store.runs()] == ["before"]
    assert [(p.workload.batch_size, p.samples_ms) for p in points] == [
        (1, (1.0, 1.5, 1.0)), (2, (1.0, 1.5, 2.0))]


def test_a_wrong_statement_is_a_bug_not_a_transient_error():
    # pysqlite raises OperationalError for a typo or a missing table too: those keep their
    # traceback at once instead of 120 s of retries ending in "store unavailable".
    from nnscale.store.retry import transient

    engine = sa.create_engine("sqlite://")
    for statement in ("SELEC 1", "SELECT * FROM nosuch"):
        with pytest.raises(sa.exc.OperationalError) as info, engine.connect() as conn:
            conn.exec_driver_sql(statement)
        assert not transient(info.value)
    engine.dispose()
