"""The parent watch of `nnscale.lifeline`: a killed parent that is not yet reaped (a zombie) counts
as gone, and a reused pid (another start time) does not count as the parent. The module it runs
leaves as Python would, less the finalization; torchrun's rendezvous records name the same methods."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def _lifeline(tmp_path, body: str) -> subprocess.CompletedProcess:
    (tmp_path / "lifeline_probe.py").write_text(body)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), src]))
    return subprocess.run([sys.executable, "-m", "nnscale.lifeline", str(os.getpid()), "lifeline_probe"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_a_module_that_returns_leaves_with_0_after_its_exit_functions(tmp_path):
    r = _lifeline(tmp_path, "import atexit, sys\natexit.register(lambda: print('exit function ran'))\n"
                            "print('unflushed', end='')\nsys.stderr.write('err')\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, "unflushedexit function ran\n", "err")


def test_a_module_that_fails_leaves_as_python_would(tmp_path):
    assert _lifeline(tmp_path, "import sys\nsys.exit(3)\n").returncode == 3
    assert _lifeline(tmp_path, "import sys\nsys.exit(0)\n").returncode == 0
    r = _lifeline(tmp_path, "raise ValueError('boom')\n")
    assert r.returncode == 1 and "ValueError: boom" in r.stderr


def test_the_rendezvous_records_name_the_same_method():
    pytest.importorskip("torch")
    from torch.distributed.elastic.rendezvous import dynamic_rendezvous as dr

    from nnscale import lifeline

    original = dr.get_method_name
    try:
        lifeline._cheaper_rendezvous_records()
        assert dr.get_method_name is not original

        def outer():
            return inner()

        def inner():
            return [(original(d), dr.get_method_name(d)) for d in (0, 1, 2, 3, 500)]

        pairs = outer()
        assert [a for a, _ in pairs] == [b for _, b in pairs]
        assert pairs[2][0] == "inner" and pairs[3][0] == "outer" and pairs[4][0] == "no_method_name"
    finally:
        dr.get_method_name = original
