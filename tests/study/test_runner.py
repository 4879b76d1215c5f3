"""The study end to end on a tiny net: every step stored, the report written, and resume after a kill."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnscale.records import ALLREDUCE, SWEEP
from nnscale.store import open_store
from nnscale.study.config import study_from_dict
from nnscale.study.runner import run_study

SRC = str(Path(__file__).resolve().parents[2] / "src")
TINY = {"nets": ["test-tiny-mlp"], "batches": [1, 4], "world_sizes": [1, 2], "point_budget": 1.5,
        "target_rel_ci": 0.1, "scale_batch_per_worker": 8, "scale_net": "test-tiny-mlp", "processes": 1,
        "max_processes": 1, "predict_gpus": [1, 2, 4, 8], "scale_launches": 1}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_study_runs_every_step_and_writes_the_report(tmp_path):
    study = study_from_dict(TINY, "tiny.yaml")
    db = str(tmp_path / "s.db")
    result = run_study(study, run="tiny", db=db, device="cpu", out=tmp_path / "report")
    ms = open_store(db).measurements("tiny")
    sweeps = [m for m in ms if m.workload.kind == SWEEP]
    assert {(m.workload.mode, m.workload.batch_size) for m in sweeps} == {
        ("inference", 1), ("inference", 4), ("training", 1), ("training", 4)}
    ddp = sorted(m.workload.world_size for m in ms if m.workload.strategy == "ddp")
    assert ddp == [1, 2]
    assert any(m.workload.kind == ALLREDUCE for m in ms)
    html = (result.report_dir / "index.html").read_text()
    assert "AlexNet" in html and "724" in html  # the seed's table is in it
    assert "Speedup" in html
    assert open_store(db).run("tiny").environment["device_profile"]["gemm_flop_per_s"]["fp32"] > 0


def test_killed_study_resumes_without_losing_points_or_processes(tmp_path):
    """SIGKILL to the whole study mid-round (measure/rounds.py): finished points come back as they
    were, unfinished ones continue from the processes they had, nothing is measured twice."""
    study_file = tmp_path / "tiny.yaml"
    study_file.write_text("nets: [test-tiny-mlp, test-tiny-resnet]\nbatches: [1, 2]\n"
                          "world_sizes: [1]\npoint_budget: 1.5\ntarget_rel_ci: 0.1\nprocesses: 2\n"
                          "max_processes: 2\nscale_launches: 1\nscale_net: test-tiny-mlp\n"
                          "predict_gpus: [1, 2]\n")
    db = tmp_path / "k.db"
    env = dict(os.environ, PYTHONPATH=SRC)
    cmd = [sys.executable, "-m", "nnscale", "run", "--study", str(study_file), "--run", "k",
           "--db", str(db), "--device", "cpu", "--out", str(tmp_path / "report")]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    before, procs = [], {}
    # Round 2 under way: some points finished, others with their round-1 process only.
    while time.monotonic() < deadline and not (before and len(procs) >= 2):
        time.sleep(0.3)
        if db.exists():
            try:
                store = open_store(str(db), create=False)
                before = [m for m in store.measurements("k") if m.workload.kind == SWEEP]
                procs = store.process_results(store.run("k").id)
            except Exception:  # noqa: BLE001 - the run may not exist yet
                before, procs = [], {}
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert before and len(procs) >= 2, "no point finished beside unfinished ones within 120 s"
    store = open_store(str(db), create=False)
    before = store.measurements("k")
    procs = store.process_results(store.run("k").id)  # as the kill left them
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming run 'k'" in done.stderr
    after = open_store(str(db)).measurements("k")
    keys = [m.workload.key() for m in after]
    assert len(keys) == len(set(keys))
    by_key = {m.workload.key(): m for m in after}
    kept = {m.workload.key(): m.samples_ms for m in before if m.status in ("ok", "unstable")}
    assert all(by_key[k].samples_ms == s for k, s in kept.items())
    for key, stored in procs.items():  # continued, not started again
        first = tuple(x for m, _ in stored for x in m.samples_ms)
        assert by_key[key].samples_ms[:len(first)] == first
        assert by_key[key].stats.processes.processes == 2
    sweeps = [m for m in after if m.workload.kind == SWEEP and m.workload.framework == "torch"]
    assert len(sweeps) == 2 * 2 * 2  # two nets, two modes, two batches
    assert open_store(str(db)).process_results(store.run("k").id) == {}
    assert (tmp_path / "report" / "index.html").exists()


def test_bad_budget_is_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run([sys.executable, "-m", "nnscale", "run", "--budget", "-5m"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--budget" in r.stderr
