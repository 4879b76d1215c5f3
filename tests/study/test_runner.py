"""The study end to end on tiny nets: every step stored, the report written, and resume after a kill
(one study run, killed mid-round and resumed, for both)."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nnscale.records import ALLREDUCE, SWEEP
from nnscale.study.runner import CALIBRATION_COMPUTE_MS
from nnscale.store import open_store

SRC = str(Path(__file__).resolve().parents[2] / "src")
# Two nets with two processes per point (so that a kill mid-round leaves points half done) and two
# world sizes (DDP at 1 and 2, the all-reduce at 2).
STUDY = ("nets: [test-tiny-mlp, test-tiny-resnet]\nbatches: [1, 4]\nworld_sizes: [1, 2]\n"
         "point_budget: 1.5\ntarget_rel_ci: 0.1\nprocesses: 2\nmax_processes: 2\nscale_launches: 1\n"
         "scale_net: test-tiny-mlp\nscale_batch_per_worker: 8\npredict_gpus: [1, 2, 4, 8]\n")
RUN = "tiny"


@dataclass(frozen=True)
class KilledStudy:
    tmp: Path
    db: Path
    before: list  # the measurements as the kill left them
    procs: dict  # the unfinished points' stored processes, as the kill left them
    resumed: subprocess.CompletedProcess  # the same command again, after the kill


@pytest.fixture(scope="module")
def killed_study(tmp_path_factory) -> KilledStudy:
    """One study for both study tests (one run costs ~60-90 s): `nnscale run --study` as a user
    starts it, SIGKILLed to its whole process group mid-round (measure/rounds.py: round 2 under way,
    some points finished, others with their round-1 process only), then the same command again."""
    tmp = tmp_path_factory.mktemp("study")
    study_file = tmp / "tiny.yaml"
    study_file.write_text(STUDY)
    db = tmp / "s.db"
    env = dict(os.environ, PYTHONPATH=SRC, XDG_CACHE_HOME=str(tmp / "cache"))
    cmd = [sys.executable, "-m", "nnscale", "run", "--study", str(study_file), "--run", RUN,
           "--db", str(db), "--device", "cpu", "--out", str(tmp / "report")]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    before, procs = [], {}
    while time.monotonic() < deadline and not (before and len(procs) >= 2):
        time.sleep(0.3)
        if db.exists():
            try:
                store = open_store(str(db), create=False)
                before = [m for m in store.measurements(RUN) if m.workload.kind == SWEEP]
                procs = store.process_results(store.run(RUN).id)
            except Exception:  # noqa: BLE001 - the run may not exist yet
                before, procs = [], {}
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert before and len(procs) >= 2, "no point finished beside unfinished ones within 120 s"
    store = open_store(str(db), create=False)
    before = store.measurements(RUN)
    procs = store.process_results(store.run(RUN).id)  # as the kill left them
    resumed = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=300)
    return KilledStudy(tmp, db, before, procs, resumed)


# xdist_group: both tests read the module's one study run; one worker runs them.
@pytest.mark.xdist_group("study_run")
def test_study_runs_every_step_and_writes_the_report(killed_study):
    assert killed_study.resumed.returncode == 0, killed_study.resumed.stderr[-2000:]
    db = str(killed_study.db)
    ms = open_store(db).measurements(RUN)
    sweeps = [m for m in ms if m.workload.kind == SWEEP]
    assert {(m.workload.mode, m.workload.batch_size) for m in sweeps} == {
        ("inference", 1), ("inference", 4), ("training", 1), ("training", 4)}
    ddp = sorted((m.workload.world_size, m.workload.concurrent_copies) for m in ms
                 if m.workload.strategy == "ddp")
    # 1 and 2 workers, and the loaded reference of the 2 (two one-worker copies at once).
    assert ddp == [(1, 1), (1, 2), (2, 1)]
    # The calibration's calls are timed after compute, as the DDP step meets its bucket's call.
    calibration = [m for m in ms if m.workload.kind == ALLREDUCE]
    assert calibration and {m.workload.compute_before_ms for m in calibration} == {CALIBRATION_COMPUTE_MS}
    html = (killed_study.tmp / "report" / "index.html").read_text()
    assert "AlexNet" in html and "724" in html  # the seed's table is in it
    assert "Speedup" in html
    assert open_store(db).run(RUN).environment["device_profile"]["gemm_flop_per_s"]["fp32"] > 0


@pytest.mark.xdist_group("study_run")
def test_killed_study_resumes_without_losing_points_or_processes(killed_study):
    """SIGKILL to the whole study mid-round (measure/rounds.py): finished points come back as they
    were, unfinished ones continue from the processes they had, nothing is measured twice."""
    done, db = killed_study.resumed, str(killed_study.db)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming run '{RUN}'" in done.stderr
    after = open_store(db).measurements(RUN)
    keys = [m.workload.key() for m in after]
    assert len(keys) == len(set(keys))
    by_key = {m.workload.key(): m for m in after}
    kept = {m.workload.key(): m.samples_ms for m in killed_study.before
            if m.status in ("ok", "unstable")}
    assert all(by_key[k].samples_ms == s for k, s in kept.items())
    for key, stored in killed_study.procs.items():  # continued, not started again
        first = tuple(x for m, _ in stored for x in m.samples_ms)
        assert by_key[key].samples_ms[:len(first)] == first
        assert by_key[key].stats.processes.processes == 2
    sweeps = [m for m in after if m.workload.kind == SWEEP and m.workload.framework == "torch"]
    assert len(sweeps) == 2 * 2 * 2  # two nets, two modes, two batches
    store = open_store(db)
    assert store.process_results(store.run(RUN).id) == {}
    assert (killed_study.tmp / "report" / "index.html").exists()


def test_bad_budget_is_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run([sys.executable, "-m", "nnscale", "run", "--budget", "-5m"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--budget" in r.stderr
