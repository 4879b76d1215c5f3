"""Workers forked from pre-imported interpreters (measure/forkserver.py), with real processes: a
point's processes come from distinct images, each forked worker runs at its own thread count in
its own session, images are single-threaded when they fork and none outlives its session, a
forked worker's crash and hang come back as points, and `--spawn` (or no session) still spawns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from measure_helpers import SHORT, alive

from nnscale.errors import UserError
from nnscale.measure.forkserver import IMAGES, POOL, WorkerPool, forkable
from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.processes import run_processes
from nnscale.measure.runner import PointSpec, run_point, worker_env
from nnscale.records import Workload

SRC = str(Path(__file__).resolve().parents[2] / "src")




def tiny(threads: int = 1, batch: int = 2) -> Workload:
    return Workload("test-tiny-mlp", "inference", batch, (3, 8, 8), threads=threads)


def images() -> list:
    return [image for pool in POOL._pools.values() for image in pool]


def test_only_torch_on_cpu_is_forked():
    assert forkable("torch", "cpu")
    assert not forkable("torch", "cuda:0")  # CUDA must not be initialised before a fork
    assert not forkable("tensorflow", "cpu") and not forkable("jax", "cpu")  # threads at import


def test_a_points_processes_come_from_distinct_single_threaded_images_that_end_with_the_session():
    spec = PointSpec(tiny(), replace(SHORT, processes=IMAGES, max_processes=IMAGES), 120)
    with POOL.session():
        m = run_processes(spec, run_point)
        running = images()
        pids = [image.proc.pid for image in running]
        # Forking is safe only from a single-threaded process: the image runs no operator (no
        # OpenMP pool) and has no parent-watch thread.
        tasks = [len(os.listdir(f"/proc/{pid}/task")) for pid in pids]
    assert m.status in ("ok", "unstable"), m.error
    assert m.stats.processes.processes == IMAGES and m.stats.processes.worker_start == "fork"
    assert len(set(pids)) == IMAGES == len(running)  # one process from each image
    assert tasks == [1] * IMAGES
    time.sleep(0.2)
    assert not any(alive(pid) for pid in pids) and images() == []  # stopped with the session


def test_a_forked_worker_runs_at_its_own_thread_count():
    with POOL.session():
        one = run_point(PointSpec(tiny(threads=1), SHORT, 120))
        two = run_point(PointSpec(tiny(threads=2), SHORT, 120))
        envs = len(POOL._pools)
    assert (one.stats.host.threads, two.stats.host.threads) == (1, 2)
    assert one.stats.processes.worker_start == two.stats.processes.worker_start == "fork"
    assert envs == 2  # OMP_NUM_THREADS is read when the library loads: one image set per count


def test_outside_a_session_or_with_spawn_a_worker_is_a_new_interpreter():
    assert run_point(PointSpec(tiny(), SHORT, 120)).stats.processes.worker_start == "spawn"
    with POOL.session():
        m = run_point(PointSpec(tiny(), replace(SHORT, worker_start="spawn"), 120))
        assert images() == []
    assert m.stats.processes.worker_start == "spawn"
    with pytest.raises(UserError, match="bad measurement worker_start 'thread': expected fork or spawn"):
        MeasurePolicy(worker_start="thread")


def test_a_forked_workers_crash_and_hang_are_points_and_its_children_are_killed(tmp_path, monkeypatch):
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("NNSCALE_TEST_CRASH", "4")
    monkeypatch.setenv("NNSCALE_TEST_HANG", "8")
    monkeypatch.setenv("NNSCALE_TEST_PIDFILE", str(pidfile))
    pool = WorkerPool(images=1)
    env = worker_env(1)
    with pool.session():
        crash = pool.start(env)
        out, err = crash.communicate(_spec_json(tiny(batch=4)), timeout=120)
        assert crash.returncode == -signal.SIGABRT and "injected crash" in err
        hang = pool.start(env)  # the same image again, still in step with us
        with pytest.raises(subprocess.TimeoutExpired):
            hang.communicate(_spec_json(tiny(batch=8)), timeout=3)
        os.killpg(hang.pid, signal.SIGKILL)  # as runner.run_point does on a timeout
        hang.communicate()
        assert hang.returncode == -signal.SIGKILL
        ok = pool.start(env)
        out, _ = ok.communicate(_spec_json(tiny(batch=2)), timeout=120)
        assert ok.returncode == 0 and "NNSCALE-RESULT" in out
    time.sleep(0.2)
    noted = [int(p) for p in pidfile.read_text().split()]
    assert len(noted) == 1 + 3 + 1  # the image, three workers and the hung worker's child
    assert not any(alive(p) for p in noted)


def _spec_json(w: Workload) -> str:
    import json

    return json.dumps(PointSpec(w, SHORT, 120).to_dict())


def test_killing_the_measuring_parent_ends_its_images_and_forked_workers(tmp_path):
    pidfile = tmp_path / "pids"
    code = ("import sys\n"
            "from nnscale.measure.forkserver import POOL\n"
            "from nnscale.measure.methodology import MeasurePolicy\n"
            "from nnscale.measure.runner import PointSpec, run_point\n"
            "from nnscale.records import Workload\n"
            "w = Workload('test-tiny-mlp', 'inference', 2, (3, 8, 8), threads=1)\n"
            "with POOL.session():\n"
            "    run_point(PointSpec(w, MeasurePolicy(processes=1, max_processes=1), 600))\n")
    # The worker hangs at its start, after starting a child that hangs too (worker.py's faults).
    env = dict(os.environ, PYTHONPATH=SRC, NNSCALE_TEST_PIDFILE=str(pidfile), NNSCALE_TEST_HANG="1")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 120
    while (not pidfile.exists() or len(pidfile.read_text().split()) < 3) and time.monotonic() < deadline:
        time.sleep(0.1)
    noted = [int(p) for p in pidfile.read_text().split()]
    assert len(noted) == 3 and all(alive(p) for p in noted)  # image, forked worker, its child
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10  # PR_SET_PDEATHSIG (image), the parent watch (worker, 0.5 s)
    while any(alive(p) for p in noted) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in noted)
