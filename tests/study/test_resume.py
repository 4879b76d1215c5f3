"""Resuming: a run is resumed only with the study and device it was started with, and a store left
empty by a command killed before its first commit is resumed by starting the run."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nnscale.store import open_store

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _nnscale(tmp_path, *args, timeout=240):
    env = dict(os.environ, PYTHONPATH=SRC, XDG_CACHE_HOME=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "nnscale", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("stored, needle", [
    ({"study": "quick", "device": "cpu"}, "started with study 'quick', not 'tiny'"),
    ({"study": "tiny", "device": "cuda"}, "started with device 'cuda', not 'cpu'"),
], ids=["study", "device"])
def test_resuming_with_another_study_or_device_is_refused(tmp_path, stored, needle):
    # The run as `nnscale run` creates it (its notes name study and device), with one point.
    db = tmp_path / "r.db"
    with open_store(str(db)) as store:
        store.create_run("k", notes=json.dumps(stored))
    (tmp_path / "tiny.yaml").write_text("nets: [test-tiny-mlp]\nbatches: [1]\nworld_sizes: [1]\n"
                                        "point_budget: 1\n")
    r = _nnscale(tmp_path, "run", "--study", "tiny.yaml", "--run", "k", "--device", "cpu",
                 "--db", str(db), "--out", str(tmp_path / "report"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert needle in lines[-1], lines
    assert [line for line in lines if "error" in line] == [lines[-1]]
    with open_store(str(db), create=False) as store:
        assert store.measurements("k") == []
        assert json.loads(store.run("k").notes) == stored


@pytest.mark.parametrize("left", ["empty file", "empty schema"])
def test_resuming_a_sweep_killed_before_its_first_commit_starts_the_run(tmp_path, left):
    db = tmp_path / "killed.db"
    if left == "empty file":
        db.touch()  # what sqlite leaves when killed right after opening the file
    else:
        with open_store(str(db)):
            pass
    before = _nnscale(tmp_path, "sweep", "--resume", "r", "--db", str(db))
    assert before.returncode == 2 and len(before.stderr.strip().splitlines()) == 1
    r = _nnscale(tmp_path, "sweep", "test-tiny-mlp", "--batch", "1", "--budget", "0.5",
                 "--processes", "1", "--max-processes", "1", "--resume", "r", "--db", str(db))
    assert r.returncode == 0, r.stderr[-2000:]
    with open_store(str(db), create=False) as store:
        (point,) = store.measurements("r")
    assert point.status in ("ok", "unstable") and point.workload.batch_size == 1
    # A typo in the name of a run to resume is still refused where the store holds runs.
    typo = _nnscale(tmp_path, "sweep", "test-tiny-mlp", "--batch", "1", "--resume", "rr",
                    "--db", str(db))
    assert typo.returncode == 2 and "no run named 'rr'" in typo.stderr
    with open(db, "rb"):
        assert sqlite3.connect(db).execute("SELECT count(*) FROM runs").fetchone() == (1,)
