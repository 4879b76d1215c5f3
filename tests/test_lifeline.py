"""The parent watch of `nnscale.lifeline`: a killed parent that is not yet reaped (a zombie) counts
as gone, and a reused pid (another start time) does not count as the parent."""

import os
import signal
import subprocess
import sys
import time

from nnscale.lifeline import _alive, parent_token, start_time


def test_a_zombie_parent_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        token = parent_token(child.pid)
        assert _alive(token)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while start_time(child.pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        # not reaped yet: /proc/PID/stat still exists, in state Z
        with open(f"/proc/{child.pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] == "Z"
        assert start_time(child.pid) is None and not _alive(token)
    finally:
        child.wait()


def test_a_reused_pid_is_not_the_parent():
    pid = os.getpid()
    assert _alive(parent_token(pid))
    assert not _alive(f"{pid}:{int(start_time(pid)) + 1}")
