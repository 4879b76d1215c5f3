"""Real worker processes: a point's crash, OOM or hang is stored and does not poison the next; a
real allocation failure under a memory cap (RLIMIT_AS) is an OOM point; a sweep killed with
SIGKILL at random moments loses no finished point, leaves no worker behind, and `--resume`
completes it with every point stored exactly once.

Each worker costs a Python + torch start-up (seconds), so these tests combine checks.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from measure_helpers import SHORT, alive
from nnscale.measure.forkserver import IMAGES
from nnscale.measure.runner import PointSpec, run_point
from nnscale.measure.sweep import SweepConfig, run_sweep
from nnscale.errors import UserError
from nnscale.records import Workload
from nnscale.store import open_store

SRC = str(Path(__file__).resolve().parents[2] / "src")
HANG_TIMEOUT_S = 3.0  # the injected hang comes before the framework loads: seconds are plenty




def pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_hang_oom_and_crash_are_stored_and_the_sweep_goes_on(store, tmp_path, monkeypatch):
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("NNSCALE_TEST_OOM", "2")
    monkeypatch.setenv("NNSCALE_TEST_CRASH", "4")
    monkeypatch.setenv("NNSCALE_TEST_HANG", "8")
    monkeypatch.setenv("NNSCALE_TEST_PIDFILE", str(pidfile))
    cfg = SweepConfig("test-tiny-mlp", batches=(2, 4, 8, 16), threads=1, policy=SHORT)

    def runner(spec):  # a short timeout for the hanging point only: the others start a framework
        return run_point(replace(spec, timeout_s=HANG_TIMEOUT_S if spec.workload.batch_size == 8 else 300))

    result = run_sweep(cfg, store, run="faults", runner=runner)
    by_batch = {m.workload.batch_size: m for m in store.measurements("faults")}
    assert sorted(by_batch) == [2, 4, 8, 16]
    assert [by_batch[b].status for b in (2, 4, 8)] == ["oom", "error", "timeout"]
    assert "injected allocation failure" in by_batch[2].error
    assert "SIGABRT" in by_batch[4].error and "injected crash" in by_batch[4].error
    assert "no result within 3 s (hung in start)" in by_batch[8].error and "killed" in by_batch[8].error
    assert by_batch[16].status in ("ok", "unstable")  # measured normally after all that
    assert by_batch[16].stats.timing.iterations >= 2 and result.knees["inference"] == 16
    # 4 workers, the hung worker's child, and the sweep's images (forked workers, forkserver.py)
    assert len(pids(pidfile)) == 5 + min(IMAGES, 4) and not any(alive(p) for p in pids(pidfile))


def test_real_allocation_failure_under_a_memory_cap_is_an_oom_point():
    # 2**20 images of 3x8x8 fp32 are 768 MiB: more than the 256 MiB the worker may add.
    w = Workload("test-tiny-mlp", "inference", 2**20, (3, 8, 8), threads=1)
    m = run_point(PointSpec(w, SHORT, timeout_s=120, memory_cap_bytes=256 << 20))
    assert m.status == "oom", m.error
    assert "allocate" in m.error and "\n" not in m.error


def sweep_cmd(db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nnscale", "sweep", "test-tiny-mlp", "--batch", "1,2,4",
            "--threads", "1", "--budget", "0.3", "--warmup", "0.3", "--target-ci", "0.05", "--processes", "1",
            "--db", str(db), *extra]


def stored_points(db: Path) -> dict[str, dict]:
    """The run's stored points by workload key, read while the sweep may be writing (WAL)."""
    if not db.exists():
        return {}
    try:
        store = open_store(str(db), create=False)
    except UserError as e:  # the sweep has created the file but not yet its tables
        if "holds no nnscale results" in str(e):
            return {}
        raise
    with store:
        return {m.workload.key(): m.to_dict() for m in store.measurements("k")} if store.runs() else {}


def test_sigkill_at_random_moments_then_resume(tmp_path):
    db, pidfile = tmp_path / "r.db", tmp_path / "pids"
    env = dict(os.environ, PYTHONPATH=SRC, NNSCALE_TEST_PIDFILE=str(pidfile))
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    kept: dict[str, dict] = {}
    # First kill: a random moment after the first point is stored (mid-sweep, wherever the next
    # point is: starting a worker, warming up, measuring, committing). Second: a random moment of
    # the resumed sweep, start-up included.
    for attempt, args in enumerate((["--run", "k"], ["--resume", "k"])):
        proc = subprocess.Popen(sweep_cmd(db, *args), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if attempt == 0:
            deadline = time.monotonic() + 120
            while not stored_points(db) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 3.0) if attempt == 0 else rng.uniform(0.5, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)  # PR_SET_PDEATHSIG is delivered asynchronously
        assert not any(alive(p) for p in pids(pidfile)), f"a worker outlived its sweep (seed {seed})"
        stored = stored_points(db)
        for key, point in kept.items():  # no finished point lost or changed
            assert stored[key] == point, seed
        kept.update(stored)
    assert kept, f"the first kill came before any point was stored (seed {seed})"
    final = subprocess.run(sweep_cmd(db, "--resume", "k"), env=env, capture_output=True, text=True,
                           timeout=300)
    assert final.returncode == 0, final.stderr
    with open_store(str(db), create=False) as store:
        points = store.measurements("k")
    assert sorted(m.workload.batch_size for m in points) == [1, 2, 4], seed  # each exactly once
    assert all(m.status in ("ok", "unstable") for m in points)
    for m in points:
        if m.workload.key() in kept:
            assert m.to_dict() == kept[m.workload.key()], seed  # resumed, not measured again
    assert "knee (inference): batch" in final.stdout and "3 points in run 'k'" in final.stdout


def test_worker_from_an_uninstalled_tree_prints_one_result_line():
    import json

    spec = PointSpec(Workload("test-tiny-mlp", "training", 2, (3, 8, 8), threads=1), SHORT, 60)
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-m", "nnscale.measure.worker"], input=json.dumps(spec.to_dict()),
                         env=env, capture_output=True, text=True, timeout=120, cwd="/")
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    assert out.returncode == 0 and len(lines) == 1 and lines[0].startswith("NNSCALE-RESULT {")
    assert json.loads(lines[0].partition(" ")[2])["status"] in ("ok", "unstable")
    phases = [ln.split()[1] for ln in out.stderr.splitlines() if ln.startswith("NNSCALE-PHASE")]
    assert phases == ["start", "setup", "first-step", "measure"]
    assert replace(spec, seed=1).to_dict()["parent_pid"] == os.getpid()
