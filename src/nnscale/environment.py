"""What machine and software a run ran on, captured once per run and stored with it.

No framework is imported at module import. `capture_environment(include_torch=True)` imports torch
inside the function (when installed) for CUDA and GPU facts; do that in the parent process before
starting workers with the spawn method (not fork: CUDA does not survive fork). Every probe is
best-effort: a probe that fails gives None, capturing never raises.

`interference(window_s)` is the machine's state just before measuring: the load average, the share
of the CPUs that other processes used and that the hypervisor stole over a short window
(`/proc/loadavg`, `/proc/stat`'s per-state jiffies with `steal` the 8th column, and
`/proc/[pid]/stat` utime + stime (fields 14 and 15) for who used them; proc(5)); `cpu_jiffies()`
lets a caller take the steal share of any stretch of time (each measured point does).

Sources: /proc/cpuinfo and /proc/meminfo (proc(5)), /proc/driver/nvidia/version (NVIDIA driver),
`git rev-parse HEAD` and `git status --porcelain` (git documentation).
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

# Environment variables that change speed; exact names, then prefixes.
ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "NUMEXPR_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_LAUNCH_BLOCKING",
    "CUBLAS_WORKSPACE_CONFIG",
    "LD_PRELOAD",
    "MALLOC_CONF",
)
ENV_PREFIXES = ("NCCL_", "OMP_", "MKL_", "KMP_", "GOMP_", "TORCH_", "PYTORCH_", "CUDA_", "NVIDIA_",
                "TF_", "XLA_", "JAX_", "KERAS_", "ORT_")
# Never store what looks like a secret, whatever its prefix.
_SECRET = re.compile(r"TOKEN|SECRET|PASSW|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
BF16_FLAGS = {"amx_bf16", "avx512_bf16"}
VECTOR_FLAGS = {"avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile", "fma"}
PACKAGES = ("nnscale", "torch", "torchvision", "timm", "numpy", "scipy", "sqlalchemy",
            # the other frameworks' (each point also stores the version its worker ran)
            "tensorflow", "tensorflow-cpu", "keras", "jax", "jaxlib", "onnx", "onnxruntime",
            "onnxruntime-gpu")


def _probe(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except Exception:  # best-effort: an odd machine must not stop a benchmark
        return None


def _read(path: str) -> str:
    return Path(path).read_text(errors="replace")


def _cpuinfo() -> dict:
    """CPU model and core counts from /proc/cpuinfo (Linux); model falls back to platform."""
    model, physical = None, set()
    text = _probe(lambda: _read("/proc/cpuinfo")) or ""
    for block in text.strip().split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
        model = model or fields.get("model name") or fields.get("Model") or fields.get("Hardware")
        if "core id" in fields:
            physical.add((fields.get("physical id", "0"), fields["core id"]))
    affinity = _probe(lambda: len(os.sched_getaffinity(0)))
    flags = set(fields.get("flags", "").split()) if text else set()
    return {
        "model": model or platform.processor() or None,
        # Native bf16 matrix math (AMX or AVX-512 BF16): without either, bf16 on a CPU is converted
        # to fp32 to compute and is no faster (the study then measures fp32).
        "bf16_native": bool(flags & BF16_FLAGS),
        "vector_flags": sorted(flags & VECTOR_FLAGS),
        "logical_cores": os.cpu_count(),
        "physical_cores": len(physical) or None,
        "usable_cores": affinity,  # this process's CPU affinity (taskset, cgroups cpusets)
    }


def _memory_bytes() -> int | None:
    for line in (_probe(lambda: _read("/proc/meminfo")) or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024  # kB in proc(5)
    return _probe(lambda: os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _os_name() -> str | None:
    for line in (_probe(lambda: _read("/etc/os-release")) or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"')
    return None


def _versions() -> dict:
    return {name: _probe(lambda n=name: metadata.version(n)) for name in PACKAGES}


def _git(args: list[str], cwd: Path) -> str:
    out = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
    )
    return out.stdout.strip()


def _git_revision(where: Path) -> dict | None:
    """Commit of the git working tree holding `where`; dirty = tracked files modified."""
    revision = _probe(lambda: _git(["rev-parse", "HEAD"], where))
    if not revision:
        return None
    # --no-optional-locks: a status taken during someone's commit must not touch the index.
    status = _probe(
        lambda: _git(
            ["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"], where
        )
    )
    return {"commit": revision, "dirty": None if status is None else bool(status)}


def _env_vars() -> dict[str, str]:
    return {
        k: v
        for k, v in sorted(os.environ.items())
        if (k in ENV_VARS or k.startswith(ENV_PREFIXES)) and not _SECRET.search(k)
    }


def _nvidia_driver() -> str | None:
    text = _probe(lambda: _read("/proc/driver/nvidia/version")) or ""
    match = re.search(r"Kernel Module\s+(?:for\s+\S+\s+)?([0-9][0-9.]+)", text)
    return match.group(1) if match else None


def _torch_facts() -> dict:
    """CUDA and GPU facts through torch, imported here only (the torch-free layers import this module
    too, for the rest of the environment); {} without torch."""
    try:
        import torch
    except Exception:  # noqa: BLE001 - a broken torch install must not stop a run from being recorded
        return {}
    facts: dict = {
        "torch_threads": _probe(torch.get_num_threads),
        "torch_interop_threads": _probe(torch.get_num_interop_threads),
        "cuda_version": _probe(lambda: torch.version.cuda),
        "cudnn_version": _probe(torch.backends.cudnn.version),
        "cuda_available": bool(_probe(torch.cuda.is_available)),
        "gpu_count": 0,
        "gpus": [],
    }
    if facts["cuda_available"]:
        count = _probe(torch.cuda.device_count) or 0
        facts["gpu_count"] = count
        for i in range(count):
            props = _probe(lambda i=i: torch.cuda.get_device_properties(i))
            if props is None:
                continue
            facts["gpus"].append(
                {
                    "name": props.name,
                    "memory_bytes": int(props.total_memory),
                    "capability": f"{props.major}.{props.minor}",
                    "multiprocessors": props.multi_processor_count,
                }
            )
    return facts


def capture_environment(include_torch: bool = True) -> dict:
    """A JSON-ready description of this machine and its software (see the module docstring)."""
    import nnscale

    env = {
        "captured_utc": datetime.now(UTC).isoformat(),
        "host": _probe(socket.gethostname),
        "os": {
            "name": _os_name(),
            "platform": _probe(platform.platform),
            "kernel": _probe(platform.release),
            "machine": _probe(platform.machine),
        },
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "cpu": _cpuinfo(),
        "memory_bytes": _memory_bytes(),
        "versions": _versions(),
        "git": _git_revision(Path(nnscale.__file__).resolve().parent),
        "env": _env_vars(),
        "nvidia_driver": _nvidia_driver(),
    }
    if include_torch:
        env["torch"] = _torch_facts()
    return env


# --- interference: what else is using the machine ---------------------------------------------

BUSY_STATES = (0, 1, 2, 5, 6)  # user nice system irq softirq (of user nice system idle iowait irq softirq steal)
STEAL_STATE = 7
LOAD_PER_CORE_MAX = 1.0
INTERFERENCE_WINDOW_S = 0.25  # long enough for 25 jiffies at USER_HZ 100, short before a sweep


def cpu_jiffies() -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies of all CPUs since boot, from /proc/stat's `cpu` line; None off Linux.

    Guest time is already counted in user (proc(5)), so it is not added again."""
    text = _probe(lambda: _read("/proc/stat")) or ""
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:9]]
            v += [0] * (8 - len(v))
            return sum(v[i] for i in BUSY_STATES), v[STEAL_STATE], sum(v)
    return None


def steal_share(before: tuple[int, int, int] | None, after: tuple[int, int, int] | None) -> float | None:
    """Share of the CPUs' time stolen by the hypervisor between two `cpu_jiffies()` readings."""
    if before is None or after is None or after[2] <= before[2]:
        return None
    return (after[1] - before[1]) / (after[2] - before[2])


def _process_jiffies(mine: set[int]) -> dict[int, tuple[str, int]]:
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        stat = _probe(lambda e=entry: _read(f"/proc/{e.name}/stat"))
        if not stat or ")" not in stat:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()  # fields from the 3rd (state) on
        out[int(entry.name)] = (name, int(rest[11]) + int(rest[12]))  # utime + stime
    return out


def interference(window_s: float = INTERFERENCE_WINDOW_S) -> dict:
    """Load average, others' CPU share, steal share and the busiest other processes, over `window_s`.

    Shares are of the whole machine's CPU time (1.0 = every CPU busy). This process (idle, sleeping
    through the window) and its parent are left out of the per-process list.
    """
    cores = os.cpu_count() or 1
    mine = {os.getpid(), os.getppid()}
    load = _probe(lambda: [float(x) for x in _read("/proc/loadavg").split()[:3]])
    before, procs0 = cpu_jiffies(), _probe(lambda: _process_jiffies(mine)) or {}
    time.sleep(window_s)
    after, procs1 = cpu_jiffies(), _probe(lambda: _process_jiffies(mine)) or {}
    result: dict = {"window_s": window_s, "cores": cores,
                    "load_average": load, "load_per_core": None if not load else load[0] / cores,
                    "others_cpu_share": None, "steal_share": steal_share(before, after), "busiest": []}
    if before is not None and after is not None and after[2] > before[2]:
        total = after[2] - before[2]
        result["others_cpu_share"] = (after[0] - before[0]) / total
        used = sorted(((procs1[p][1] - j, procs1[p][0], p) for p, (_, j) in procs0.items()
                       if p in procs1 and procs1[p][1] > j), reverse=True)
        result["busiest"] = [f"{name} (pid {pid}) {100 * d / total:.0f} %" for d, name, pid in used[:3]]
    return result


def pending_writes_bytes() -> int | None:
    """Bytes of file data waiting to be written to disk (/proc/meminfo Dirty + Writeback); None off
    Linux."""
    text = _probe(lambda: _read("/proc/meminfo")) or ""
    kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in text.splitlines() if ":" in line)
          if k in ("Dirty", "Writeback") and v.split()}
    return 1024 * sum(kb.values()) if kb else None


def flush_pending_writes() -> dict:
    """Write pending file data out now (sync(2)), before anything is measured, and say how much
    there was and how long it took. Why: `make run` installs ~5.5 GB into .venv and starts the study
    seconds later; /proc/meminfo then held ~2 GB Dirty (session 10, EPYC VM), which the kernel
    writes back 30 s after it was dirtied (vm.dirty_expire_centisecs 3000), i.e. during the
    study's first processes. In both fresh-clone studies there, the first process of the first
    point ran 2.5-3.1x slower than that point's other nine; a rerun minutes later never did."""
    pending = pending_writes_bytes()
    start = time.perf_counter()
    os.sync()
    return {"pending_writes_bytes": pending, "sync_s": round(time.perf_counter() - start, 3)}


def check_interference(threshold: float) -> dict:
    """`interference()` with its `interference_warning` under "warning" (None when quiet): what a
    sweep, tune or study stores with its run and prints before measuring. Pending disk writes are
    flushed first (flush_pending_writes), and how much there was is kept with it."""
    flushed = flush_pending_writes()
    found = interference()
    found.update(flushed)
    found["warning"] = interference_warning(found, threshold)
    return found


def interference_warning(found: dict, threshold: float) -> str | None:
    """One line naming what is over: others' CPU share or the steal share above `threshold` (a share
    of the machine), a load average above one runnable task per core; None when quiet."""
    over = []
    # The load average lags (1-minute decay) and counts nnscale's own start-up (importing a
    # framework keeps a core busy for seconds): only more runnable tasks than cores is over.
    load = found.get("load_per_core")
    if load is not None and load > LOAD_PER_CORE_MAX:
        over.append(f"load average {found['load_average'][0]:.2f} ({load:.2f} per core)")
    others = found.get("others_cpu_share")
    if others is not None and others > threshold:
        who = f": {', '.join(found['busiest'])}" if found.get("busiest") else ""
        over.append(f"other processes used {100 * others:.0f} % of the CPUs{who}")
    steal = found.get("steal_share")
    if steal is not None and steal > threshold:
        over.append(f"the hypervisor stole {100 * steal:.0f} % of the CPU time")
    if not over:
        return None
    return (f"warning: the machine is not quiet ({'; '.join(over)}; threshold {100 * threshold:g} %): "
            "timings will be slower and noisier than on a quiet machine")
