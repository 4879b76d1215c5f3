"""Faults between interleaved rounds (launch_loop): `nnscale scale --nproc 1,2 --launches 3` launches
1, 2, 1, 2, 1, 2. A launch lost in round 2 stores its world size as the failed point; world size 1,
measured in rounds 1 and 2 but not yet stored, is stored from those two launches, flagged unstable
with the reason. A SIGTERM of nnscale stores what was measured the same way; nothing stays running.

The faults come from outside: a rank SIGKILLed (as the OOM killer would), nnscale SIGTERMed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from nnscale.store import open_store

from ddp_helpers import cli_env, leftovers, new_mark

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            pairs = [item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return {}
    if b"nnscale.distributed.worker" not in cmdline or b"torch.distributed.run" in cmdline:
        return {}  # torchrun's agent, or not a rank
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def _ranks(mark: str) -> dict[str, dict[str, int]]:
    """The running ranks of each launch: {launch id: {RANK: pid}}."""
    launches: dict[str, dict[str, int]] = {}
    for pid in leftovers(mark):
        env = _environ(pid)
        if "NNSCALE_LAUNCH_ID" in env and "RANK" in env:
            launches.setdefault(env["NNSCALE_LAUNCH_ID"], {})[env["RANK"]] = pid
    return launches


def _start(db, run: str, mark: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "nnscale", "scale", "test-tiny-mlp", "--nproc", "1,2",
           "--batch-per-worker", "8", "--threads-per-worker", "1", "--budget", "1.5",
           "--launches", "3", "--timeout", "120", "--db", str(db), "--run", run]
    return subprocess.Popen(cmd, env=cli_env(NNSCALE_TEST_MARK=mark), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _until_second_two_worker_launch(proc, mark: str) -> dict[str, int]:
    """Watch the launches; return the ranks of world size 2's second launch (round 2) once both
    ranks run."""
    seen: list[str] = []
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        for launch_id, ranks in _ranks(mark).items():
            if "1" in ranks and launch_id not in seen:
                seen.append(launch_id)
            if len(seen) == 2 and launch_id == seen[1] and len(ranks) == 2:
                return ranks
        time.sleep(0.1)
    raise AssertionError(f"world size 2's second launch did not start (saw {len(seen)})")


def _stop(proc, mark: str) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pid in leftovers(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _no_leftovers(mark: str) -> None:
    gone = time.monotonic() + 30
    while leftovers(mark) and time.monotonic() < gone:
        time.sleep(0.2)
    assert leftovers(mark) == [], "processes of the launch survived"


def _rounds_of_world_size_1(point, rounds: int) -> None:
    s = point.stats
    assert point.workload.world_size == 1 and point.status == "unstable"
    assert f"measured in {rounds} of 3 launches" in point.error
    assert s.processes.processes == rounds and len(s.launch.started_at_s) == rounds
    assert len(point.samples_ms) == s.timing.iterations == sum(s.processes.process_iterations)
    assert s.timing.stable is False and s.distributed.speedup_vs_1_worker == pytest.approx(1.0)


def test_a_rank_killed_in_round_2_stores_the_failed_world_size_and_the_rounds_of_the_others(tmp_path):
    db, mark = tmp_path / "round2.db", new_mark()
    proc = _start(db, "round2", mark)
    try:
        ranks = _until_second_two_worker_launch(proc, mark)
        os.kill(ranks["1"], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err[-2000:]
        last = err.strip().splitlines()[-1]
        assert "world size 2 (launch 2 of 3)" in last and "rank 1" in last, last
        assert "1 point(s) before it stored" in last, last
        _no_leftovers(mark)
    finally:
        _stop(proc, mark)
    with open_store(str(db), create=False) as store:
        one, two = store.measurements("round2")
    _rounds_of_world_size_1(one, 2)  # rounds 1 and 2 ran before world size 2's second launch
    assert two.workload.world_size == 2 and two.status == "error" and "launch 2 of 3" in two.error


def test_sigterm_in_round_2_stores_every_world_size_from_its_rounds(tmp_path):
    db, mark = tmp_path / "term.db", new_mark()
    proc = _start(db, "term", mark)
    try:
        _until_second_two_worker_launch(proc, mark)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
        assert "terminated by SIGTERM" in err.strip().splitlines()[-1]
        _no_leftovers(mark)
    finally:
        _stop(proc, mark)
    with open_store(str(db), create=False) as store:
        one, two = store.measurements("term")
    _rounds_of_world_size_1(one, 2)
    # World size 2 was stopped, not failed: its finished round is kept, as world size 1's are.
    assert two.workload.world_size == 2 and two.status == "unstable"
    assert "measured in 1 of 3 launches" in two.error and two.stats.processes.processes == 1
