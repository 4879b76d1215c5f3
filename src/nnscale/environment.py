"""What machine and software a run ran on, captured once per run and stored with it.

No framework is imported at module import. `capture_environment(include_torch=True)` imports torch
inside the function (when installed) for CUDA and GPU facts; do that in the parent process before
starting workers with the spawn method (not fork: CUDA does not survive fork). Every probe is
best-effort: a probe that fails gives None, capturing never raises.

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
    return {
        "model": model or platform.processor() or None,
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
