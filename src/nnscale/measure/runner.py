"""The parent side of point isolation: run one point in a fresh worker process and get its result.

Every point runs in a fresh worker process in its own session, so that a hung worker *and
everything it started* (compile workers) can be killed as one process group: forked from a
pre-imported interpreter inside a sweep, tune or study where that is safe (`start_worker`,
`nnscale.measure.forkserver`), else `python -m nnscale.measure.worker` (this interpreter,
`sys.executable`, with the package's `src` directory on PYTHONPATH so an uninstalled checkout
works). Both run the same worker code and speak the same protocol. What can go wrong is stored,
never raised (see `worker` for the protocol):

- no result line and a nonzero exit: an "error" point with the last line of the worker's stderr
  ("oom" when that line reports an allocation failure, e.g. an uncaught std::bad_alloc);
- no result within the timeout: SIGKILL to the process group, a "timeout" point naming the phase
  the worker was in.

Thread counts are set explicitly in the worker's environment (OMP_NUM_THREADS, MKL_NUM_THREADS,
OPENBLAS_NUM_THREADS) before the framework starts, and again by the backend (torch.set_num_threads).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import nnscale
from nnscale.measure.backends.base import looks_like_oom
from nnscale.measure.forkserver import POOL, ForkedWorker, forks
from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.worker import PHASE_PREFIX, RESULT_PREFIX
from nnscale.records import Measurement, Workload

SRC_DIR = Path(nnscale.__file__).resolve().parents[1]
STARTUP_S = 60.0  # importing a framework, building a big model, cuDNN initialisation
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True, slots=True)
class PointSpec:
    """Everything a worker needs to measure one point."""

    workload: Workload
    policy: MeasurePolicy
    timeout_s: float
    memory_cap_bytes: int | None = None  # None: on CPU, what is available (see worker)
    seed: int = 0

    def to_dict(self) -> dict:
        return {
            "workload": asdict(self.workload),
            "policy": self.policy.to_dict(),
            "memory_cap_bytes": self.memory_cap_bytes,
            "seed": self.seed,
            "parent_pid": os.getpid(),
        }


def default_timeout_s(policy: MeasurePolicy, compile_timeout_s: float = 0.0) -> float:
    """Start-up + compilation + warm-up + the budget stretched as far as it may be, plus one more
    budget (a step may overrun it once)."""
    return STARTUP_S + compile_timeout_s + policy.warmup_max_s + (1.0 + policy.max_budget_stretch) * policy.budget_s


def thread_env(threads: int) -> dict[str, str]:
    """The thread-pool variables every worker gets: OpenMP (torch's intra-op pool), MKL and
    OpenBLAS (NumPy's BLAS) read them once, at start-up, so they are set before the framework loads
    and then again by the backend (torch.set_num_threads). 0: left as they are."""
    return {name: str(threads) for name in THREAD_VARS} if threads else {}


def worker_env(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every worker nnscale starts — a sweep's point worker and each torchrun
    rank (distributed/launch.py) alike: this source tree first on PYTHONPATH, the thread variables,
    a fixed string-hash seed (PYTHONHASHSEED, so that set and dict orders of strings repeat from
    worker to worker; the model and data seeds travel in the job), then `extra`."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join([str(SRC_DIR), path]) if path else str(SRC_DIR)
    env.setdefault("PYTHONHASHSEED", "0")
    env.update(thread_env(threads))
    env.update(extra or {})
    return env


def _last_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith(PHASE_PREFIX)]
    return lines[-1][:300] if lines else ""


def _last_phase(stderr: str) -> str:
    phases = [ln[len(PHASE_PREFIX):].strip() for ln in stderr.splitlines() if ln.startswith(PHASE_PREFIX)]
    return phases[-1] if phases else "start-up"


def parse_result(stdout: str) -> Measurement | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return Measurement.from_dict(json.loads(line[len(RESULT_PREFIX):]))
    return None


def _kill_group(proc) -> None:  # a subprocess.Popen or a forkserver.ForkedWorker
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_worker(spec: PointSpec, env: dict[str, str]):
    """A fresh worker process for `spec`: forked from a pre-imported image where that is allowed
    and the policy asks for it (`nnscale.measure.forkserver`), else a new interpreter."""
    w = spec.workload
    if forks(spec.policy.worker_start, w.framework, w.device):
        forked = POOL.start(env)
        if forked is not None:
            return forked
    return subprocess.Popen(
        [sys.executable, "-m", "nnscale.measure.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: killable as a whole, no terminal signals
    )


def run_point(spec: PointSpec, env: dict[str, str] | None = None) -> Measurement:
    """Measure `spec` in a fresh worker; crashes, hangs and OOMs come back as points (module doc)."""
    w = spec.workload
    proc = start_worker(spec, worker_env(w.threads, env))
    timed_out = False
    try:
        stdout, stderr = proc.communicate(json.dumps(spec.to_dict()), timeout=spec.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        stdout, stderr = proc.communicate()
    except BaseException:  # Ctrl-C or an error here: never leave a worker behind
        _kill_group(proc)
        proc.wait()
        raise
    _kill_group(proc)  # whatever the worker started and left behind
    result = parse_result(stdout)
    if result is not None:
        how = "fork" if isinstance(proc, ForkedWorker) else "spawn"
        return replace(result, stats=replace(result.stats, processes=replace(
            result.stats.processes, worker_start=how)))
    if timed_out:
        return Measurement(w, "timeout", error=(
            f"no result within {spec.timeout_s:.0f} s (hung in {_last_phase(stderr)}); worker killed"))
    last = _last_line(stderr)
    code = proc.returncode
    try:
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    except ValueError:
        how = f"killed by signal {-code}"
    if code == -signal.SIGKILL and not last:
        last = "killed from outside, e.g. by the kernel's out-of-memory killer"
    status = "oom" if looks_like_oom(last) else "error"
    return Measurement(w, status, error=f"worker {how} in {_last_phase(stderr)}: {last or 'no message'}")
