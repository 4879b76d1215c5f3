"""Start one group of workers through torchrun, wait for it within a timeout, and leave nothing behind.

torchrun (`python -m torch.distributed.run`) is the launcher people already use; nnscale adds no
rendezvous or launcher of its own. Per launch: c10d rendezvous on the given endpoint, no restarts
(`--max-restarts 0`: a failed measurement is reported, not retried), the workers as
`python -m nnscale.distributed.worker JOB.json` with this package's source directory first on
PYTHONPATH (so an uninstalled checkout works, `PYTHONPATH=src python3 -m nnscale …`).

Clean-up. torchrun is started in a new session (its own process group), but it starts every worker
in a session of its own too (torch/distributed/elastic/multiprocessing/subprocess_handler), so
killing torchrun's group would orphan the workers. Every process of a launch therefore carries
NNSCALE_LAUNCH_ID=<random id> in its environment, and on timeout or failure the parent signals
torchrun's group and then every process group whose leader carries that id (read from
/proc/PID/environ): SIGTERM, a grace period, SIGKILL. SIGTERM and SIGHUP of nnscale itself become
an exception (`nnscale.errors.Terminated`) that runs this clean-up; for SIGKILL, which runs nothing,
torchrun and every worker die with their parent (`lifeline`: PR_SET_PDEATHSIG and a parent watch).

Placement (`launch_spec`): per node and per launch, the rendezvous endpoint, who hosts it, threads,
cores and environment. CPU workers split the node's usable cores evenly (`os.sched_getaffinity`): with P the largest
workers-per-node of the run and c cores, every world size's workers get ⌊c/P⌋ threads each
(OMP_NUM_THREADS and torch.set_num_threads) and local rank r is pinned to cores [r·t, (r+1)·t), so
workers do not time each other's slices and the 1-worker reference is the same worker as the others.
With more workers than cores each gets one thread and no pinning (and the command warns); more
threads × workers than cores asked for explicitly is refused (config.check_thread_fit).
GPU workers get one GPU each (LOCAL_RANK).

Multi-node: every node runs the same nnscale command with the same --rdzv-endpoint; the node that
owns the endpoint's address hosts the c10d store (see `netutil`). gloo, which nnscale also uses on GPU
for its control messages, picks its interface from the host name unless GLOO_SOCKET_IFNAME says
otherwise; nnscale sets it to the interface that routes to the endpoint when the user has not.
NCCL's own interface choice (NCCL_SOCKET_IFNAME, InfiniBand) is left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from nnscale.distributed.config import Launching, usable_cpus
from nnscale.lifeline import PARENT_ENV, parent_token
from nnscale.distributed.netutil import (Endpoint, check_port_free, free_port, interface_of,
                                         is_local, local_address_towards, wait_reachable)
from nnscale.measure.backends.base import looks_like_oom
from nnscale.measure.runner import SRC_DIR as RUNNER_SRC_DIR
from nnscale.measure.runner import thread_env, worker_env

LAUNCH_ID_ENV = "NNSCALE_LAUNCH_ID"
GRACE_S = 5.0  # SIGTERM → SIGKILL
AFTER_ERROR_S = 20.0  # once a rank has failed, how long torchrun gets to stop the others itself
SRC_DIR = str(RUNNER_SRC_DIR)


class LaunchFailed(Exception):
    """A launch that did not produce a result: a rank failed, or the timeout passed."""

    def __init__(self, message: str, status: str = "error", rank: int | None = None):
        super().__init__(message)
        self.status = status  # "error", "oom" or "timeout", as stored in Measurement.status
        self.rank = rank


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    job: dict  # JSON for the workers
    nproc_per_node: int
    nnodes: int
    endpoint: Endpoint
    is_host: bool  # this node runs the rendezvous store
    rdzv_id: str  # the same on every node of one launch, different between launches
    timeout_s: float
    local_addr: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def torchrun_command(spec: LaunchSpec, job_path: Path) -> list[str]:
    conf = f"is_host={int(spec.is_host)},join_timeout={int(max(spec.timeout_s, 1))}"
    # Through `lifeline`, so that torchrun dies with this process even when it is SIGKILLed.
    cmd = [sys.executable, "-m", "nnscale.lifeline", str(os.getpid()),
           "torch.distributed.run",
           "--nnodes", str(spec.nnodes), "--nproc-per-node", str(spec.nproc_per_node),
           "--rdzv-backend", "c10d", "--rdzv-endpoint", str(spec.endpoint),
           "--rdzv-id", spec.rdzv_id, "--rdzv-conf", conf,
           "--max-restarts", "0", "--monitor-interval", "0.2"]
    if spec.local_addr:
        cmd += ["--local-addr", spec.local_addr]
    return cmd + ["-m", "nnscale.distributed.worker", str(job_path)]


def _environment(spec: LaunchSpec, launch_id: str) -> dict[str, str]:
    """A sweep worker's environment (measure.runner.worker_env), plus the launch's marks; the
    thread variables are the launch's (`spec.env`)."""
    # torchrun and the workers watch this process (lifeline)
    env = worker_env(0, {LAUNCH_ID_ENV: launch_id, PARENT_ENV: parent_token()})
    env.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")  # a failed NCCL op ends the process
    env.update(spec.env)
    return env


def _marked_groups(launch_id: str) -> set[int]:
    """Process groups of this launch's processes (found by their environment)."""
    needle = f"{LAUNCH_ID_ENV}={launch_id}".encode()
    groups = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    groups.add(os.getpgid(int(entry.name)))
        except (OSError, ProcessLookupError):
            continue  # gone, or not ours to read
    groups.discard(os.getpgid(0))
    return groups


def reap(proc: subprocess.Popen, launch_id: str) -> None:
    """Stop torchrun and every worker of the launch: SIGTERM, then SIGKILL after GRACE_S."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        groups = _marked_groups(launch_id)
        if proc.poll() is None:
            groups.add(proc.pid)  # torchrun's own group (start_new_session)
        if not groups:
            break
        for pgid in groups:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and (proc.poll() is None or _marked_groups(launch_id)):
            time.sleep(0.1)
    proc.wait()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _errors(workdir: Path) -> list[dict]:
    found = [_read_json(p) for p in workdir.glob("rank*.error.json")]
    return sorted((e for e in found if e), key=lambda e: e["time"])


def _states(workdir: Path) -> list[dict]:
    found = [_read_json(p) for p in workdir.glob("rank*.state.json")]
    return sorted((s for s in found if s), key=lambda s: s["rank"])


def _root_cause(log: Path) -> tuple[str, int | None]:
    """What torchrun's ChildFailedError report names as the root cause (a worker killed by a signal
    writes no error file of its own), else the log's last lines; and the rank, if named."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log", None
    _, found, cause = text.partition("Root Cause (first observed failure):")
    fields = dict(re.findall(r"^\s*(rank|exitcode|traceback)\s*:\s*(.+?)\s*$", cause, re.M))
    if found and "rank" in fields:
        rank = int(fields["rank"].split()[0])
        return (f"rank {rank} ended with exit code {fields.get('exitcode', '?')}: "
                f"{fields.get('traceback', '')}".rstrip(": "), rank)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:]), None


def launch(spec: LaunchSpec) -> dict:
    """Run the workers; return rank 0's result, or raise LaunchFailed naming the rank and error."""
    workdir = Path(tempfile.mkdtemp(prefix="nnscale-launch-"))
    launch_id = uuid.uuid4().hex
    job_path = workdir / "job.json"
    job_path.write_text(json.dumps(spec.job))
    log_path = workdir / "torchrun.log"
    start = time.monotonic()
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(torchrun_command(spec, job_path),
                                    env=_environment(spec, launch_id), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = start + spec.timeout_s
            while proc.poll() is None and time.monotonic() < deadline:
                if _errors(workdir):  # torchrun stops the others itself; give it a bounded while
                    deadline = min(deadline, time.monotonic() + AFTER_ERROR_S)
                time.sleep(0.1)
        finally:
            timed_out = proc.poll() is None
            reap(proc, launch_id)
        errors = _errors(workdir)
        result = _read_json(workdir / "result.json")
        # The result is written after every rank finished measuring; a crash in the teardown after
        # it (torchrun then exits non-zero) does not make the measurement wrong.
        if result is not None and not errors:
            return result
        if errors:
            first = errors[0]
            where = f"rank {first['rank']} on {first['host']}"
            what = f"{first['type']}: {first['message']}"
            # An allocation failure is "oom", as for single-device points (the same markers): a
            # finished status, so resuming does not measure it again.
            raise LaunchFailed(f"{where} failed: {what}", rank=first["rank"],
                               status="oom" if looks_like_oom(what) else "error")
        if timed_out:
            states = ", ".join(f"rank {s['rank']} in {s['phase']}" for s in _states(workdir))
            raise LaunchFailed(f"timed out after {spec.timeout_s:g} s (--timeout); last seen: "
                               f"{states or 'no rank started'}", status="timeout")
        cause, rank = _root_cause(log_path)
        raise LaunchFailed(f"torchrun exited with code {proc.returncode}: {cause}", rank=rank)
    finally:
        if os.environ.get("NNSCALE_KEEP_LAUNCH_DIR"):
            print(f"nnscale: launch files kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


# --- placement: one node's share of a launch ------------------------------------------------

REACH_WAIT_S = 120.0  # how long a non-host node waits for the host's rendezvous to open


@dataclass(frozen=True, slots=True)
class Cores:
    threads: int  # per worker
    cpus: tuple[int, ...] | None  # pinned cores of the node, None: no pinning


def split_cores(nproc: int, threads: int | None = None, most: int | None = None) -> Cores:
    """Threads per worker (given, or the usable cores split evenly among `most` workers, the largest
    world size of the run) and the cores to pin them to (None: more threads than cores, unpinned).

    Every world size of a run gets the same per-worker share, the one of its largest: with 1 and 2
    workers on 2 cores, 1 thread each, the lone worker included. Its 2-thread time would make the
    1-worker reference a different worker, and speedup would mix thread scaling into data-parallel
    scaling (issue 11: 1.07x measured at 2 workers against a 2-thread reference)."""
    cpus = usable_cpus()
    most = max(most or nproc, nproc)
    threads = threads or max(1, len(cpus) // most)
    return Cores(threads, tuple(cpus) if most * threads <= len(cpus) else None)


def worker_cores(launching: Launching, nproc: int) -> Cores:
    """The per-worker share of `nproc` workers in a launch of `launching` (split_cores)."""
    return split_cores(nproc, launching.threads_per_worker, max(launching.nproc))


def rdzv_id(kind: str, job_key: dict, world_size: int) -> str:
    """The same on every node for one launch (from the job's node-independent settings)."""
    digest = hashlib.sha256(json.dumps(job_key, sort_keys=True, default=str).encode()).hexdigest()
    return f"nnscale-{kind}-w{world_size}-{digest[:10]}"


def launch_spec(launching: Launching, nproc: int, job: dict, job_key: dict) -> LaunchSpec:
    """A LaunchSpec for `nproc` workers per node, after checking the endpoint (UserError if bad)."""
    env: dict[str, str] = {}
    if launching.device == "cpu":
        cores = worker_cores(launching, nproc)
        job = dict(job, threads=cores.threads, cpus=list(cores.cpus) if cores.cpus else None)
        env.update(thread_env(cores.threads))
    else:  # GPU workers: the node's cores shared among them for host-side work, not pinned
        env.update(thread_env(max(1, len(usable_cpus()) // nproc)))
    ep = launching.rdzv_endpoint
    if ep is None:
        ep, host = Endpoint("127.0.0.1", free_port()), True
    else:
        host = is_local(ep) and (launching.node_rank == 0 or launching.nnodes == 1)
        if host:
            check_port_free(ep)
        else:
            wait_reachable(ep, min(REACH_WAIT_S, launching.timeout_s))
    local_addr = launching.local_addr
    if local_addr is None and launching.nnodes > 1:
        local_addr = local_address_towards(ep)
    if launching.nnodes > 1 and "GLOO_SOCKET_IFNAME" not in os.environ and local_addr:
        ifname = interface_of(local_addr)
        if ifname:
            env["GLOO_SOCKET_IFNAME"] = ifname
    world = launching.nnodes * nproc
    return LaunchSpec(job=job, nproc_per_node=nproc, nnodes=launching.nnodes, endpoint=ep,
                      is_host=host, rdzv_id=rdzv_id(job["kind"], job_key, world),
                      timeout_s=launching.timeout_s, local_addr=local_addr, env=env)
