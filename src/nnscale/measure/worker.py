"""`python -m nnscale.measure.worker`: measure one point in a fresh process (pyperf-style isolation).

Protocol (the parent is `nnscale.measure.runner`):
- stdin: one JSON object, `PointSpec.to_dict()`: the workload, the policy, the memory cap, the seed
  and the parent's pid.
- stderr: `NNSCALE-PHASE name` lines as the point moves on (setup, compile or first-step, measure),
  so that a parent that has to kill a hung worker can say where it hung; anything else is diagnostics.
- stdout: exactly one line `NNSCALE-RESULT {json}`, a `Measurement.to_dict()`, then the process
  leaves at once with `os._exit`, skipping interpreter teardown (which can be slow or hang in
  framework atexit handlers and would only add to the point's wall time).

The worker dies with its parent (`nnscale.lifeline`: Linux `PR_SET_PDEATHSIG`, prctl(2), and a
parent watch): a sweep killed with SIGKILL leaves no worker running on.

Fault injection, for the tests only and honoured only here: NNSCALE_TEST_HANG, NNSCALE_TEST_OOM and
NNSCALE_TEST_CRASH, each "1" (every point) or a comma-separated list of batch sizes: HANG makes the
worker hang at start-up, before the framework loads (so a test can use a timeout of seconds), after
starting a child process that hangs too, as compile workers would; OOM makes the step fail to
allocate (MemoryError); CRASH makes the step abort the process. NNSCALE_TEST_PIDFILE: append the
worker's pid (and a hanging child's) to that file, so a test can check that none outlives what
should end it.
"""

from __future__ import annotations

import json
import os
import sys
import time

from nnscale.lifeline import die_with_parent, parent_token, watch_parent

PHASE_PREFIX = "NNSCALE-PHASE "
RESULT_PREFIX = "NNSCALE-RESULT "


def phase(name: str) -> None:
    sys.stderr.write(f"{PHASE_PREFIX}{name}\n")
    sys.stderr.flush()


def _injected(name: str, batch_size: int) -> bool:
    value = os.environ.get(name, "").strip()
    if not value:
        return False
    if value in ("1", "all"):
        return True
    return str(batch_size) in {v.strip() for v in value.split(",")}


def _note_pid(pid: int) -> None:
    path = os.environ.get("NNSCALE_TEST_PIDFILE")
    if path:
        with open(path, "a") as f:
            f.write(f"{pid}\n")


def _with_faults(backend, batch_size: int):
    """Wrap the backend's step with the injected faults (module docstring), if any are set."""
    oom = _injected("NNSCALE_TEST_OOM", batch_size)
    crash = _injected("NNSCALE_TEST_CRASH", batch_size)
    if not (oom or crash):
        return backend
    from dataclasses import replace

    inner_prepare = backend.prepare

    def prepare(workload, seed=0):
        prepared = inner_prepare(workload, seed)
        inner_step = prepared.step

        def step():
            inner_step()
            if crash:
                sys.stderr.write("injected crash (NNSCALE_TEST_CRASH)\n")
                sys.stderr.flush()
                os.abort()
            if oom:
                raise MemoryError("injected allocation failure (NNSCALE_TEST_OOM)")

        return replace(prepared, step=step)

    backend.prepare = prepare
    return backend


def main() -> None:
    spec = json.loads(sys.stdin.read())
    parent = spec.get("parent_pid")
    die_with_parent(parent)
    if parent is not None:
        watch_parent(parent_token(parent))
    run_worker(spec)


def run_worker(spec: dict) -> None:
    """Measure the point of `spec` and write its result line; ends the process. Also the body of a
    worker forked from a pre-imported image (`nnscale.measure.forkserver`), which sets up its own
    lifeline first."""
    _note_pid(os.getpid())
    phase("start")
    if _injected("NNSCALE_TEST_HANG", spec["workload"]["batch_size"]):
        import subprocess

        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        _note_pid(child.pid)
        while True:
            time.sleep(3600)
    from nnscale.measure.backends.base import available_host_memory_bytes, get_backend
    from nnscale.measure.methodology import MeasurePolicy
    from nnscale.measure.point import measure_point, one_line
    from nnscale.records import Measurement, Workload

    workload = Workload.from_dict(spec["workload"])
    try:
        policy = MeasurePolicy.from_dict(spec["policy"])
        backend = get_backend(workload.framework)
        cap = spec.get("memory_cap_bytes")
        if cap is None and workload.device == "cpu":
            # Without a cap, a batch too big for RAM ends in swapping or the kernel's OOM killer;
            # with one it ends in a clean allocation failure, stored as an "oom" point.
            # RLIMIT_AS counts address space, not memory: add slack for what is reserved but never
            # touched — thread stacks and glibc's per-thread malloc arenas (64 MiB each, mallopt(3)).
            available = available_host_memory_bytes()
            slack = (1 << 30) + workload.threads * (128 << 20)
            cap = None if available is None else available + slack
        if cap is not None:
            backend.limit_memory(int(cap), workload.device)
        backend = _with_faults(backend, workload.batch_size)
        result = measure_point(workload, policy, backend=backend, seed=spec.get("seed", 0), phase=phase)
    except Exception as exc:  # set-up failed before measure_point could catch it
        result = Measurement(workload, "error", error=one_line(exc))
    line = RESULT_PREFIX + json.dumps(result.to_dict()) + "\n"
    sys.stdout.write(line)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
