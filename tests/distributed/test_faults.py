"""Faults: a rank that raises, a rank that hangs, a rendezvous port already taken, the parent killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from nnscale.cli import main
from nnscale.store import open_store

from ddp_helpers import cli_env, leftovers, new_mark, run_cli

pytestmark = pytest.mark.slow


@pytest.mark.xdist_group("timing")  # a wall-clock bound: not beside the other timed tests
def test_a_rank_that_raises_fails_the_run_naming_it_and_keeps_finished_points(tmp_path):
    db, mark = tmp_path / "faults.db", new_mark()
    env = cli_env(NNSCALE_TEST_FAULT="raise:1:3", NNSCALE_TEST_MARK=mark)
    result, seconds = run_cli("scale", "test-tiny-mlp", "--nproc", "1,2", "--batch-per-worker", "8",
                              "--threads-per-worker", "1", "--budget", "1", "--db", str(db),
                              "--run", "raise", env=env, timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "world size 2" in last and "rank 1" in last, last
    assert "RuntimeError: injected fault" in last, last
    assert "1 point(s) before it stored" in last
    assert seconds < 60, seconds  # world size 1 measured, then the failure found in seconds
    with open_store(str(db), create=False) as store:
        points = store.measurements("raise")
    assert [(p.workload.world_size, p.status) for p in points][0][0] == 1
    assert points[0].status in ("ok", "unstable")
    assert points[1].status == "error" and "rank 1" in points[1].error
    assert leftovers(mark) == []


@pytest.mark.xdist_group("timing")  # a wall-clock bound: not beside the other timed tests
def test_a_rank_that_hangs_fails_within_the_timeout_and_leaves_no_process(tmp_path):
    # The hung rank ignores SIGTERM (as one stuck in native code would): only SIGKILL ends it.
    db, mark, timeout = tmp_path / "hang.db", new_mark(), 12
    env = cli_env(NNSCALE_TEST_FAULT="hang:1:3", NNSCALE_TEST_MARK=mark)
    result, seconds = run_cli("scale", "test-tiny-mlp", "--nproc", "2", "--batch-per-worker", "8",
                              "--threads-per-worker", "1", "--budget", "1", "--timeout",
                              str(timeout), "--db", str(db), "--run", "hang", env=env, timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    assert seconds < timeout + 30, seconds
    last = result.stderr.strip().splitlines()[-1]
    assert "world size 2" in last and ("timed out" in last or "rank" in last), last
    time.sleep(0.5)
    assert leftovers(mark) == [], "processes of the launch survived"
    with open_store(str(db), create=False) as store:
        (point,) = store.measurements("hang")
    assert point.status in ("timeout", "error")


def test_rendezvous_port_already_taken(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = main(["scale", "test-tiny-mlp", "--nproc", "1", "--batch-per-worker", "4",
                     "--rdzv-endpoint", f"127.0.0.1:{port}", "--db", str(tmp_path / "p.db")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"port {port} is already in use" in err[0]


def test_a_rank_killed_by_a_signal_is_named_from_torchruns_report(tmp_path):
    # A rank killed outright (the OOM killer's SIGKILL) writes no error file; torchrun's
    # ChildFailedError report names it, and the launcher quotes that.
    from nnscale.distributed.launch import _root_cause

    log = tmp_path / "torchrun.log"
    log.write_text("...\nRoot Cause (first observed failure):\n[0]:\n  time      : 2026-11-26\n"
                   "  host      : node7\n  rank      : 3 (local_rank: 1)\n"
                   "  exitcode  : -9 (pid: 4242)\n  error_file: <N/A>\n"
                   "  traceback : Signal 9 (SIGKILL) received by PID 4242\n=====\n")
    message, rank = _root_cause(log)
    assert rank == 3 and "exit code -9" in message and "SIGKILL" in message
    log.write_text("something else\nlast line\n")
    assert _root_cause(log) == ("something else | last line", None)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _stored(db) -> list:
    try:
        with open_store(str(db), create=False) as store:
            return store.measurements("killed")
    except Exception:  # noqa: BLE001 - not created yet
        return []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM],
                         ids=lambda s: s.name)
def test_killing_the_parent_during_a_point_leaves_no_process_and_keeps_finished_points(tmp_path, sig):
    # World size 1 is measured and stored; at world size 2 rank 1 hangs (ignoring SIGTERM), so
    # without clean-up torchrun and both ranks would wait for the 600 s timeout of a parent that is
    # gone. Only the nnscale process itself is signalled, as a batch system or `kill PID` would.
    db, mark = tmp_path / "kill.db", new_mark()
    env = cli_env(NNSCALE_TEST_FAULT="hang:1:3", NNSCALE_TEST_MARK=mark)
    # One launch per world size, so that world size 1 is stored before world size 2 starts (with
    # interleaved rounds its point waits for its last round: test_a_rank_killed_in_round_2_...).
    cmd = [sys.executable, "-m", "nnscale", "scale", "test-tiny-mlp", "--nproc", "1,2",
           "--batch-per-worker", "8", "--threads-per-worker", "1", "--budget", "1", "--launches", "1",
           "--timeout", "600", "--db", str(db), "--run", "killed"]
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 150
        ranks: list[int] = []
        while time.monotonic() < deadline and len(ranks) < 2:
            time.sleep(0.3)
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            if len(_stored(db)) == 1:
                ranks = [p for p in leftovers(mark) if "nnscale.distributed.worker" in _cmdline(p)
                         and "torch.distributed.run" not in _cmdline(p)]
        assert len(ranks) == 2, "world size 2 did not start within 150 s"
        time.sleep(2)  # the ranks are measuring (rank 1 soon hangs)
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
        gone = time.monotonic() + 30
        while leftovers(mark) and time.monotonic() < gone:
            time.sleep(0.2)
        left = {p: _cmdline(p) for p in leftovers(mark)}
        assert left == {}, f"processes of the launch survived {sig.name} of nnscale: {left}"
        if sig != signal.SIGKILL:  # the clean-up ran: the exit says why, in one line
            assert proc.returncode == 128 + sig, proc.returncode
            last = proc.stderr.read().strip().splitlines()[-1]
            assert f"terminated by {sig.name}" in last, last
        (point,) = _stored(db)
        assert point.workload.world_size == 1 and point.status in ("ok", "unstable")
        assert len(point.samples_ms) > 0
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in leftovers(mark):  # before the fix: torchrun and the ranks, still running
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_ddp_out_of_memory_is_stored_as_oom_and_not_measured_again_on_resume(tmp_path):
    # Rank 1 makes a real allocation the CPU allocator refuses (1 PiB): the same failure as a batch
    # too large, stored "oom" like a single-device point, so resuming the run skips it.
    db = tmp_path / "oom.db"
    args = ("scale", "test-tiny-mlp", "--nproc", "2", "--batch-per-worker", "8",
            "--threads-per-worker", "1", "--budget", "1", "--db", str(db), "--run", "oom")
    result, _ = run_cli(*args, env=cli_env(NNSCALE_TEST_FAULT="oom:1:3"), timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "can't allocate memory" in result.stderr.strip().splitlines()[-1]
    with open_store(str(db), create=False) as store:
        (point,) = store.measurements("oom")
    assert point.status == "oom" and "rank 1" in point.error
    again, seconds = run_cli(*args, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "world size 2: already measured in this run, skipped" in again.stderr
    with open_store(str(db), create=False) as store:
        assert [p.status for p in store.measurements("oom")] == ["oom"]
