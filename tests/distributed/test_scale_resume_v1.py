"""`nnscale scale ... --run fx-ddp` on the store written by the release before the explicit workload
fields (tests/store/fixtures/store_v1, copied first): the resumed run finds both world sizes it
measured then, although their stored keys were computed from the old framework tag, and launches
nothing."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from ddp_helpers import run_cli

from nnscale.store import open_store

V1 = Path(__file__).resolve().parents[1] / "store" / "fixtures" / "store_v1" / "v1.db"
# The command that measured fx-ddp (the fixture's README).
FX_DDP = ("scale", "test-tiny-mlp", "--nproc", "1,2", "--threads-per-worker", "1", "--batch-per-worker",
          "8", "--bucket-mb", "1", "--static-graph", "--bandwidth-cap", "200mbit", "--budget", "2",
          "--run", "fx-ddp")


def _rows(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT m.workload_key, m.samples_ms, m.status FROM measurements m JOIN "
                            "runs r ON r.id = m.run_id WHERE r.name = 'fx-ddp' ORDER BY m.id").fetchall()
    finally:
        conn.close()


def test_the_old_ddp_run_resumes_with_its_points_found(tmp_path):
    db = tmp_path / "v1.db"
    shutil.copy(V1, db)
    before = _rows(db)
    result, _ = run_cli(*FX_DDP, "--db", f"sqlite:///{db}", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for world in (1, 2):
        assert f"world size {world}: already measured in this run, skipped" in result.stderr
    with open_store(f"sqlite:///{db}", create=False) as store:
        points = store.measurements("fx-ddp")
    assert [p.workload.world_size for p in points] == [1, 2]  # nothing measured again, nothing added
    assert [p.samples_ms for p in points] == [tuple(json.loads(r[1])) for r in before]
    assert {p.workload.ddp.bucket_mb for p in points} == {1.0}
