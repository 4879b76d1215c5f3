"""Faults: a rank that raises, a rank that hangs, a rendezvous port already taken."""

from __future__ import annotations

import socket
import time

import pytest

from nnscale.cli import main
from nnscale.store import open_store

from ddp_helpers import cli_env, leftovers, new_mark, run_cli

pytestmark = pytest.mark.slow


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
