"""SIGTERM and SIGHUP of an nnscale process run its `finally` clean-up and exit 128+N, as Ctrl-C
does; without the handler Python dies on them at once and runs no clean-up."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
CHILD = """
import os, signal, sys, time
sys.path.insert(0, {src!r})
from nnscale.errors import Terminated, raise_on_termination
raise_on_termination()
try:
    print("ready", flush=True)
    time.sleep(60)
except Terminated as e:
    print(e, flush=True)
    sys.exit(e.exit_code)
finally:
    open({marker!r}, "w").write("cleaned up")
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_termination_signals_run_the_clean_up(tmp_path, sig):
    marker = tmp_path / "finally"
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(src=SRC, marker=str(marker))],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig
    assert out.strip() == f"terminated by {sig.name}"
    assert marker.read_text() == "cleaned up"


def test_an_ignored_hangup_stays_ignored(tmp_path):
    # `nohup nnscale run …` starts with SIGHUP ignored: closing the terminal must not end the run.
    marker = tmp_path / "finally"
    proc = subprocess.Popen(["nohup", sys.executable, "-c", CHILD.format(src=SRC, marker=str(marker))],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGHUP)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2)  # still running: the hang-up was ignored
        proc.send_signal(signal.SIGTERM)  # SIGTERM was not ignored: handled as before
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM and out.strip() == "terminated by SIGTERM"
    assert marker.read_text() == "cleaned up"
