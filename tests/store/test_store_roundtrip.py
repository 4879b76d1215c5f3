"""Runs and measurements go in and come back exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import re
import sqlite3

import numpy as np
import sqlalchemy as sa

from nnscale.records import STATUSES, Measurement, Workload
from nnscale.store import FINISHED_STATUSES, SCHEMA_VERSION, open_store


def _workload(model="resnet18", batch=8, **kw) -> Workload:
    return Workload(
        model=model, mode="inference", batch_size=batch, input_shape=(3, 224, 224), **kw
    )


def _point(batch: int, status: str = "ok", **kw) -> Measurement:
    samples = tuple(
        0.1 + 0.2 * i + 1e-13 * batch for i in range(5)
    )  # floats that need all 17 digits
    stats = {
        "samples_per_s": batch * 1000 / 0.5,
        "step_time_ms": 0.5,
        "n": 5,
        "ddp_options": {"a": [1, 2.5]},  # a nested JSON value
    }
    return Measurement(
        workload=_workload(batch=batch, **kw), status=status, samples_ms=samples, stats=stats
    )


def test_round_trip_is_exact(db_url):
    points = [
        _point(1),
        _point(2, precision="bf16", device="cuda:0", channels_last=True, compile=True, threads=4),
        Measurement(
            _workload(batch=4096), "oom", error="CUDA out of memory. Tried to allocate 2.00 GiB"
        ),
        Measurement(_workload(batch=3), "error", error="RuntimeError: boom"),
        _point(16, status="unstable", world_size=8, framework="torch"),
    ]
    env = {"host": "h", "gpus": [{"name": "H100"}], "cores": 16}
    with open_store(db_url) as store:
        run_id = store.create_run(
            "sweep-1", command_line="nnscale run --model resnet18", environment=env
        )
        for m in points:
            store.add_measurement(run_id, m)
    with open_store(db_url, create=False) as store:  # reopened: nothing was held in memory
        assert store.measurements("sweep-1") == points
        (info,) = store.runs()
        assert (info.id, info.name, info.n_measurements) == (run_id, "sweep-1", 5)
        assert info.environment == env and info.command_line == "nnscale run --model resnet18"
        assert store.run("sweep-1") == info == store.latest_run()


def test_numpy_and_non_finite_stats(db_url):
    stats = {
        "samples_per_s": np.float64(123.25),
        "n": np.int64(7),
        "rel_ci": math.nan,
        "peak_flop_per_s": math.inf,
    }
    m = Measurement(_workload(), "unstable", samples_ms=tuple(np.array([1.5, 2.5])), stats=stats)
    with open_store(db_url) as store:
        run_id = store.create_run("np")
        store.add_measurement(run_id, m)
        (back,) = store.measurements("np")
    assert back.stats.throughput.samples_per_s == 123.25 and back.stats.timing.iterations == 7
    assert math.isnan(back.stats.timing.rel_ci) and back.stats.compute.peak_flop_per_s == math.inf
    assert back.samples_ms == (1.5, 2.5) and type(back.samples_ms[0]) is float


def test_query_columns_are_filled(db_url):
    with open_store(db_url) as store:
        run_id = store.create_run("cols")
        store.add_measurement(run_id, _point(8))
        store.add_measurement(
            run_id, Measurement(_workload(batch=9), "ok", samples_ms=(3.0, 1.0, 2.0))
        )
        store.add_measurement(
            run_id, Measurement(_workload(batch=10), "ok", stats={"samples_per_s": math.nan})
        )
        with store._engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT workload_key, model, mode, batch_size, device, precision, framework, "
                    "world_size, status, samples_per_s, step_time_ms, workload FROM measurements "
                    "ORDER BY batch_size"
                )
            ).all()
            version = conn.execute(
                sa.text("SELECT value FROM meta WHERE key = 'schema_version'")
            ).scalar()
    assert version == str(SCHEMA_VERSION)
    first = rows[0]
    assert first.workload_key == _workload(batch=8).key()
    assert (first.model, first.mode, first.batch_size, first.device) == (
        "resnet18",
        "inference",
        8,
        "cpu",
    )
    assert (first.precision, first.framework, first.world_size, first.status) == (
        "fp32",
        "torch",
        1,
        "ok",
    )
    assert (first.samples_per_s, first.step_time_ms) == (16000.0, 0.5)
    assert json.loads(first.workload)["input_shape"] == [3, 224, 224]
    assert (rows[1].samples_per_s, rows[1].step_time_ms) == (None, 2.0)  # median of the samples
    assert rows[2].samples_per_s is None  # NaN is not a rate


def test_finished_keys_and_replacement_on_resume(db_url):
    with open_store(db_url) as store:
        run_id = store.get_or_create_run("resume-me")
        for batch, status in enumerate(STATUSES, start=1):
            store.add_measurement(run_id, Measurement(_workload(batch=batch), status))
        finished = {
            _workload(batch=b).key() for b, s in enumerate(STATUSES, 1) if s in FINISHED_STATUSES
        }
        assert FINISHED_STATUSES == ("ok", "unstable", "oom")
        assert store.finished_keys(run_id) == finished
        assert len(store.finished_keys(run_id, statuses=STATUSES)) == len(STATUSES)
        # Resume: same run, the failed point measured again replaces its row, in place.
        assert store.get_or_create_run("resume-me") == run_id
        error_batch = STATUSES.index("error") + 1
        again = _point(error_batch)
        store.add_measurement(run_id, again)
        stored = store.measurements("resume-me")
        assert len(stored) == len(STATUSES)
        assert stored[error_batch - 1] == again
        assert _workload(batch=error_batch).key() in store.finished_keys(run_id)
        # Another run keeps its own points under the same workload keys.
        other = store.create_run("other")
        store.add_measurement(other, _point(1))
        assert store.finished_keys(other) == {_workload(batch=1).key()}
        assert [r.n_measurements for r in store.runs()] == [len(STATUSES), 1]


def test_automatic_run_names(db_url):
    with open_store(db_url) as store:
        ids = [store.create_run() for _ in range(3)]
        names = [r.name for r in store.runs()]
    assert len(set(ids)) == 3
    assert all(re.fullmatch(r"run-\d{8}-\d{6}(-\d+)?", n) for n in names), names
    assert len(set(names)) == 3


def test_sqlite_pragmas(tmp_path):
    path = tmp_path / "results.db"
    with open_store(str(path)) as store:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    conn.close()


def test_in_memory_store():
    with open_store("sqlite://") as store:
        run_id = store.create_run("mem")
        store.add_measurement(run_id, _point(4))
        assert store.measurements("mem") == [_point(4)]


def test_processes_of_an_unfinished_point_come_back_and_storing_the_point_removes_them(db_url):
    store = open_store(db_url)
    run = store.create_run("rounds")
    a, b = _point(1), _point(2)
    store.add_process(run, 0, a, 0.012)
    store.add_process(run, 1, a)
    store.add_process(run, 0, b, 0.0)
    store.add_process(run, 0, b, 0.5)  # the same process stored again replaces it
    got = open_store(db_url).process_results(run)
    assert [(m.samples_ms, s) for m, s in got[a.workload.key()]] == [(a.samples_ms, 0.012), (a.samples_ms, None)]
    assert [s for _, s in got[b.workload.key()]] == [0.5]
    store.add_measurement(run, a)  # finished: its processes are superseded, in the same transaction
    assert set(store.process_results(run)) == {b.workload.key()}
    assert [m.workload.key() for m in store.measurements("rounds")] == [a.workload.key()]
