"""Concurrent writers lose nothing, and a writer killed with SIGKILL loses no committed point.

Workers are started with the spawn method (a fresh interpreter, as nnscale's own workers are) and
open their own store; they import this module by name, so they are plain top-level functions.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import time

from nnscale.records import Measurement, Workload
from nnscale.store import open_store

WRITERS = 4
POINTS = 200
RUN = "concurrent"


def _point(worker: int, i: int) -> Measurement:
    workload = Workload(
        model=f"net{worker}", mode="training", batch_size=i + 1, input_shape=(3, 32, 32)
    )
    samples = tuple(1.0 + worker + i / 7 + k / 3 for k in range(3))
    return Measurement(
        workload, "ok", samples, {"samples_per_s": (i + 1) / samples[1], "worker": worker}
    )


def write_points(url: str, worker: int, count: int, start, done=None) -> None:
    """Open the store, wait for the others, write `count` points; `done` counts committed ones."""
    with open_store(url) as store:
        run_id = store.get_or_create_run(RUN, command_line=f"writer {worker}")
        start.wait(timeout=60)
        for i in range(count):
            store.add_measurement(run_id, _point(worker, i))
            if done is not None:
                with done.get_lock():
                    done.value += 1


def _join_all(procs, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, f"{len(alive)} writers still running after {timeout} s"
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_concurrent_writers_lose_nothing(db_url):
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(WRITERS)
    procs = [
        ctx.Process(target=write_points, args=(db_url, w, POINTS, start), daemon=True)
        for w in range(WRITERS)
    ]
    for p in procs:
        p.start()
    _join_all(procs)
    with open_store(db_url) as store:
        (info,) = store.runs()  # the racing writers created one run, not four
        stored = store.measurements(RUN)
    assert info.n_measurements == WRITERS * POINTS
    expected = {
        m.workload.key(): m for m in (_point(w, i) for w in range(WRITERS) for i in range(POINTS))
    }
    assert len(stored) == len(expected)
    assert {m.workload.key(): m for m in stored} == expected
    for w in range(WRITERS):  # each writer's points are in its own commit order
        mine = [m.workload.batch_size for m in stored if m.stats.distributed.worker == w]
        assert mine == list(range(1, POINTS + 1))


def test_sigkilled_writer_loses_no_committed_point(db_url):
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(1)
    done = ctx.Value("i", 0)
    proc = ctx.Process(target=write_points, args=(db_url, 0, 100_000, start, done), daemon=True)
    proc.start()
    deadline = time.monotonic() + 60
    while done.value < 50 and proc.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    committed = done.value  # points whose commit had returned before the kill
    assert proc.exitcode == -signal.SIGKILL and committed >= 50
    with open_store(db_url) as store:
        stored = store.measurements(RUN)
        # Everything reported committed is there (plus at most the one being reported), intact.
        assert committed <= len(stored) <= committed + 1
        assert stored == [_point(0, i) for i in range(len(stored))]
        # And the store is still writable: no lock or transaction left behind.
        run_id = store.run(RUN).id
        store.add_measurement(run_id, _point(1, 0))
        assert len(store.measurements(RUN)) == len(stored) + 1
    if not db_url.startswith("postgresql"):
        conn = sqlite3.connect(db_url)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()


def test_concurrent_first_open_creates_schema_once(tmp_path):
    """Racing openers of a brand-new file agree on one schema (PostgreSQL: the test above)."""
    n = 3
    url = str(tmp_path / "fresh.db")
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(n)
    procs = [
        ctx.Process(target=write_points, args=(url, w, 1, start), daemon=True) for w in range(n)
    ]
    for p in procs:
        p.start()
    _join_all(procs)
    with open_store(url) as store:
        assert len(store.measurements(RUN)) == n
