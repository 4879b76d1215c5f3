"""A study's needs are checked before anything is measured: one line, exit code 2, nothing stored.

Before, each of these was found at the scaling step, after every sweep: world sizes all larger
than the machine ended in `max(())` with no report, `--device cuda:1` and an unknown scale_net
were refused only then, and a resume died the same way again.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
TINY = ("nets: [test-tiny-mlp]\nbatches: [1]\npoint_budget: 1\ntarget_rel_ci: 0.2\n"
        "predict_gpus: [1, 2]\n")


def _run(tmp_path, study: str, *extra: str):
    path = tmp_path / "study.yaml"
    path.write_text(TINY + study)
    env = dict(os.environ, PYTHONPATH=SRC, XDG_CACHE_HOME=str(tmp_path / "cache"))
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "nnscale", "run", "--study", str(path),
                             "--run", "pre", "--db", str(tmp_path / "pre.db"),
                             "--out", str(tmp_path / "report"), *extra],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    return result, time.monotonic() - start


def _one_line(result, *needles):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("study, extra, needles", [
    ("world_sizes: [4096, 8192]\nscale_net: test-tiny-mlp\n", ("--device", "cpu"),
     ("world_sizes 4096, 8192 all exceed", "usable core")),
    ("world_sizes: [1]\nscale_net: no-such-net\n", ("--device", "cpu"),
     ("scale_net", "no-such-net")),
    ("world_sizes: [1]\n", ("--device", "cuda:7"), ("cuda:7",)),
], ids=["world-sizes", "scale-net", "device"])
def test_what_a_study_needs_is_checked_before_measuring(tmp_path, study, extra, needles):
    result, seconds = _run(tmp_path, study, *extra)
    _one_line(result, *needles)
    assert not (tmp_path / "pre.db").exists()  # nothing measured, nothing stored
    assert not (tmp_path / "report").exists()
    assert seconds < 60, seconds
