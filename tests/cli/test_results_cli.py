"""`nnscale results`: a stored run as a table, CSV or JSON; the list of runs; bad input."""

from __future__ import annotations

import csv
import io
import json

import pytest

from nnscale.cli import main
from nnscale.records import Measurement, Workload
from nnscale.store import open_store


def point(batch: int, status: str = "ok") -> Measurement:
    w = Workload("test-tiny-mlp", "inference", batch, (3, 8, 8), threads=1)
    if status != "ok":
        return Measurement(w, status, error=f"{status} at batch {batch}")
    rate = 100.0 * batch / (1 + batch / 8)
    stats = {"samples_per_s": rate, "step_time_ms": 1000 * batch / rate, "rel_ci": 0.012,
             "step_time_ms_p99": 2000 * batch / rate, "iterations": 40, "peak_memory_bytes": 2**20 * batch,
             "achieved_flop_per_s": 1e6 * rate, "mfu": 0.25, "threads": 1}
    return Measurement(w, status, samples_ms=(1.0, 1.1), stats=stats)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "r.db"
    with open_store(str(path)) as store:
        run = store.create_run("old", command_line="nnscale sweep test-tiny-mlp")
        store.add_measurement(run, point(1))
        run = store.create_run("new", command_line="nnscale sweep test-tiny-mlp --batch auto")
        for b, status in ((1, "ok"), (8, "ok"), (64, "ok"), (128, "oom")):
            store.add_measurement(run, point(b, status))
    return str(path)


def test_table_of_the_latest_run(capsys, db):
    assert main(["results", "--db", db]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run new: 4 points")
    assert "oom at batch 128" in out and "25.0%" in out and "1.2%" in out
    assert "knee test-tiny-mlp inference cpu fp32: batch" in out


def test_csv_has_one_row_per_point_and_every_statistic(capsys, db):
    assert main(["results", "new", "--db", db, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["batch_size"] for r in rows] == ["1", "8", "64", "128"]
    assert rows[-1]["status"] == "oom" and rows[0]["compute.mfu"] == "0.25"
    assert list(rows[0]).count("threads") == 1 and rows[0]["input_shape"] == "3x8x8"


def test_json_round_trips_the_records(capsys, db):
    assert main(["results", "old", "--db", db, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run"] == "old"
    assert [Measurement.from_dict(d) for d in data["measurements"]] == [point(1)]


def test_list_of_runs(capsys, db):
    assert main(["results", "--runs", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "old" in out and "new" in out and "--batch auto" in out


def test_bad_input(capsys, db, tmp_path):
    assert main(["results", "nope", "--db", db]) == 2
    err = capsys.readouterr().err.strip()
    assert "no run named 'nope'" in err and "old, new" in err and len(err.splitlines()) == 1
    assert main(["results", "--db", str(tmp_path / "missing.db")]) == 2
    assert "no results store" in capsys.readouterr().err
    empty = tmp_path / "empty.db"
    open_store(str(empty)).close()
    assert main(["results", "--db", str(empty)]) == 2
    assert "holds no runs yet" in capsys.readouterr().err
