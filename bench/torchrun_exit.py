"""How long one torchrun launch takes around its workers: start to the first rank's state file, and
rank 0's result file to torchrun's exit (the tail every launch waits for after its measurement).

One launch = 2 CPU workers, one thread each, a 4 KiB all-reduce (nnscale's own launch command,
`launch.torchrun_command`, through `nnscale.lifeline`). The code measured is the nnscale on
PYTHONPATH; to compare two checkouts, alternate them (A B B A …):

    for src in A/src B/src B/src A/src A/src B/src B/src A/src A/src B/src B/src A/src; do
        PYTHONPATH=$src python bench/torchrun_exit.py; done

Prints one line: `start S  tail T  total W` in seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from nnscale.distributed import launch as L
from nnscale.distributed.config import Launching
from nnscale.measure.methodology import MeasurePolicy


def one_launch() -> tuple[float, float, float]:
    """(start to the first rank's state file, result file to exit, whole launch) in seconds."""
    spec = L.launch_spec(Launching(nproc=(2,), threads_per_worker=1), 2,
                         {"kind": "allreduce", "device": "cpu", "sizes": [4096], "dtype": "fp32",
                          "timeout_s": 120, "policy": MeasurePolicy(budget_s=0.5).to_dict()},
                         {"bench": uuid.uuid4().hex})
    workdir = Path(tempfile.mkdtemp(prefix="nnscale-bench-"))
    job = workdir / "job.json"
    job.write_text(json.dumps(spec.job))
    t0 = time.monotonic()
    proc = subprocess.Popen(L.torchrun_command(spec, job), env=L._environment(spec, uuid.uuid4().hex),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    started = result = None
    while proc.poll() is None:
        now = time.monotonic()
        if started is None and any(workdir.glob("rank*.state.json")):
            started = now
        if result is None and (workdir / "result.json").exists():
            result = now
        time.sleep(0.005)
    end = time.monotonic()
    if proc.returncode != 0 or result is None or started is None:
        raise SystemExit(f"the launch failed (exit code {proc.returncode}); files in {workdir}")
    shutil.rmtree(workdir, ignore_errors=True)
    return started - t0, end - result, end - t0


if __name__ == "__main__":
    start, tail, total = one_launch()
    print(f"start {start:.3f}  tail {tail:.3f}  total {total:.3f}")
