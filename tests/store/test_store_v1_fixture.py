"""A store written by the release before the typed statistics record (fixtures/store_v1, see its
README) is migrated on open and then reports and predicts exactly as that release did.

What the report comparison leaves out, and why: nothing of report.json is ignored except the points
table's `speedup` and `efficiency` of a distributed point. The old reader looked for keys named
"speedup"/"efficiency" that no writer ever wrote, so those cells were always empty; the typed
record has one name for the value `distributed` stores (speedup_vs_1_worker), and the cells now
show it — the test asserts they equal the stored value. Two identities changed on purpose (issue
14: configuration in explicit workload fields, none inside a string): a distributed or all-reduce
point's `key` (its node layout, DDP options and link cap are workload fields now, so the hash
differs; resume recomputes keys from the upgraded workload, tests/distributed/test_scale_resume_v1.py)
and an all-reduce point's `input_shape` (its size is `message_bytes`, no longer an input shape of
elements); the test asserts each new value. Everything else (titles, the run's own
timestamps and environment, plots' ids and files, every number) must be equal, floats exactly.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from nnscale.cli import main
from nnscale.records_stats import STATS_VERSION, Stats
from nnscale.records_stats_legacy import FIELD_OF
from nnscale.store import SCHEMA_VERSION, open_store

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store_v1"
RUNS = ("fx", "fx-lm", "fx-ddp", "fx-fsdp", "fx-ar")
FILLED = ("speedup", "efficiency")  # the module docstring: empty before, the stored value now


@pytest.fixture
def v1(tmp_path) -> Path:
    path = tmp_path / "v1.db"
    shutil.copyfile(FIXTURE / "v1.db", path)  # never the committed file itself
    return path


def _rows(path: Path) -> tuple[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        rows = conn.execute("SELECT id, workload, status, samples_ms, stats, error FROM measurements "
                            "ORDER BY id").fetchall()
    conn.close()
    return version, rows


def test_the_old_store_is_migrated_on_open_and_loses_nothing(v1):
    version, old = _rows(v1)
    assert version == "2" and len(old) == 10 and all("version" not in json.loads(r[4]) for r in old)
    with open_store(str(v1), create=False) as store:
        read = [m for run in RUNS for m in store.measurements(run)]
    version, new = _rows(v1)
    assert version == str(SCHEMA_VERSION) == "4"
    assert [r[:4] + r[5:] for r in new] == [r[:4] + r[5:] for r in old]  # only stats rewritten
    for o, n in zip(old, new):
        stats = json.loads(n[4])
        assert stats["version"] == STATS_VERSION
        assert Stats.from_dict(stats) == Stats.from_dict(json.loads(o[4]))
        record = Stats.from_dict(stats)
        for key, value in json.loads(o[4]).items():  # every old value is in its field
            block, name = FIELD_OF[key].split(".")
            if value is not None:
                assert getattr(getattr(record, block), name) == _tuple(value), key
    assert len(read) == 10 and read[0].stats.timing.median_ms > 0


def _tuple(v):
    return tuple(_tuple(x) for x in v) if isinstance(v, list) else v


def _diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            yield from _diff(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _diff(x, y, f"{path}[{i}]")
    elif a != b and not (a != a and b != b):  # NaN equals NaN here
        yield path, a, b


@pytest.mark.parametrize("run", RUNS)
def test_each_run_reports_the_same_numbers_after_the_migration(v1, tmp_path, run):
    out = tmp_path / f"rep-{run}"
    assert main(["report", run, "--db", f"sqlite:///{v1}", "-o", str(out)]) == 0
    new = json.loads((out / "report.json").read_text())
    old = json.loads((FIXTURE / f"report-{run}.json").read_text())
    differ = [d for d in _diff(old, new) if d[0].startswith(("/points[", "/tables/points/rows["))]
    assert differ == list(_diff(old, new)), differ  # nothing outside the points differs
    with open_store(str(v1), create=False) as store:
        points = store.measurements(run)

    def point(path):
        return points[int(path.split("[")[1].split("]")[0])]

    for path, was, now in [d for d in differ if d[0].endswith("/key")]:
        w = point(path).workload
        assert w.kind != "sweep" and now == w.key() != was
    for path, was, now in [d for d in differ if d[0].endswith("/input_shape")]:
        w = point(path).workload
        assert w.kind == "allreduce" and now == "" and w.message_bytes == int(was) * 4  # fp32 elements
    filled = [d for d in differ if d[0].rsplit("/", 1)[-1] in FILLED]
    assert len(filled) + sum(d[0].endswith(("/key", "/input_shape")) for d in differ) == len(differ), differ
    for path, was, now in filled:
        assert was is None
        d = point(path).stats.distributed
        assert now == (d.speedup_vs_1_worker if path.endswith("speedup") else d.efficiency_vs_1_worker)


@pytest.mark.parametrize("argv, expected", [
    (["predict", "--validate", "fx-ddp", "fx-ar", "--format", "json"], "predict-validate.json"),
    (["predict", "test-tiny-mlp", "--device", "measured:fx-ddp", "--nodes", "1,2", "--gpus-per-node",
      "2", "--intra-link", "pcie3", "--inter-link", "10gbe", "--format", "json"], "predict-measured.json"),
])
def test_the_readme_predictions_are_the_same_after_the_migration(v1, capsys, argv, expected):
    assert main([*argv, "--store", f"sqlite:///{v1}"]) == 0
    assert capsys.readouterr().out == (FIXTURE / expected).read_text()


def test_a_row_that_cannot_be_migrated_leaves_the_whole_store_as_it_was(v1, capsys):
    # One transaction: rows before the bad one were already rewritten inside it when it fails.
    with sqlite3.connect(v1) as conn:
        last = conn.execute("SELECT max(id) FROM measurements").fetchone()[0]
        stats = json.loads(conn.execute("SELECT stats FROM measurements WHERE id = ?", (last,)).fetchone()[0])
        stats["a_statistic_from_the_future"] = 1.0
        conn.execute("UPDATE measurements SET stats = ? WHERE id = ?", (json.dumps(stats), last))
    conn.close()
    before = _rows(v1)
    assert main(["report", "fx", "--db", f"sqlite:///{v1}", "-o", str(v1.parent / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a_statistic_from_the_future" in err
    assert "nothing was changed" in err and "Traceback" not in err
    assert _rows(v1) == before and before[0] == "2"


def test_a_store_newer_than_this_release_is_refused_untouched(v1, capsys):
    with sqlite3.connect(v1) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    data = v1.read_bytes()
    assert main(["report", "fx", "--db", f"sqlite:///{v1}", "-o", str(v1.parent / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "newer nnscale" in err and "Traceback" not in err
    assert v1.read_bytes() == data
