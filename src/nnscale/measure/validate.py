"""Checks of what a user asks to measure against this machine (device, precision, threads) and of
the limits every config keeps (seconds), done before anything runs or is stored. The strings of
command-line options are parsed in cli/values.py; the host's facts are nnscale.host's.

Every problem is a one-line `UserError` saying what is wrong and what is accepted. Things that run
but are slow (fp16 on a CPU without native half-precision arithmetic) are not errors: they come
back as notes the command line prints as warnings.
"""

from __future__ import annotations

import math
import re

from nnscale.errors import UserError
from nnscale.host import NATIVE_CPU_FLAGS, cpu_native, usable_cores
from nnscale.records import PRECISIONS

# A week: longer than any point or world size should take, and far below the limits of what
# consumes a timeout (subprocess.communicate's select() and c10d's timedelta overflow near 1e9 s).
MAX_TIMEOUT_S = 7 * 24 * 3600.0
# More intra-op threads than the largest CPU nodes have hardware threads (2 x 192 cores x 2 SMT)
# only oversubscribes; the cap turns a typo such as 10000 into an error, not 10000 OS threads.
MAX_THREADS = 1024
_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def check_threads(threads: int | None) -> int:
    """Intra-op threads, 1 to MAX_THREADS; None (and 0, the library's old spelling of it) means
    all usable cores of this process (its CPU affinity)."""
    if threads is None or (threads == 0 and not isinstance(threads, bool)):
        return usable_cores()
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= MAX_THREADS:
        raise UserError(f"bad --threads {threads!r}: expected an integer from 1 to {MAX_THREADS} "
                        f"(omit it for all usable cores, {usable_cores()} here)")
    return threads


def check_seconds(value: float, option: str = "--timeout", maximum: float = MAX_TIMEOUT_S) -> float:
    """A finite positive number of seconds, at most `maximum`: UserError otherwise."""
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not 0 < value <= maximum):
        days = f" ({maximum / 86400:g} days)" if maximum >= 86400 else ""
        raise UserError(f"bad {option} {value!r}: expected seconds > 0 and at most {maximum:g}{days}")
    return float(value)


def check_device(device: str) -> str:
    """Normalize 'cuda' -> 'cuda:0'; UserError when the device does not exist here."""
    match = _DEVICE.match(str(device).strip().lower())
    if not match:
        raise UserError(f"unknown device {device!r}: expected cpu, cuda or cuda:N")
    kind, index = match.group(1), int(match.group(2) or 0)
    if kind == "cpu":
        if match.group(2) is not None:
            raise UserError(f"unknown device {device!r}: the CPU is just 'cpu'")
        return "cpu"
    import torch  # only here: the checks above must not need a framework

    if not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
        raise UserError(f"device {device!r}: torch {torch.__version__} ({built}) sees no CUDA GPU; "
                        "use --device cpu")
    count = torch.cuda.device_count()
    if index >= count:
        raise UserError(f"device {device!r}: there are {count} CUDA GPUs (cuda:0 to cuda:{count - 1})")
    return f"cuda:{index}"


def check_precision(device: str, precision: str) -> str | None:
    """UserError when `device` cannot run `precision`; a note (str) when it runs but slowly."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if device == "cpu":
        if precision == "tf32":
            raise UserError("precision tf32 is a tensor-core format of NVIDIA GPUs (Ampere and newer); "
                            "on cpu use fp32, bf16 or fp16")
        if not cpu_native(precision):
            flags = " or ".join(NATIVE_CPU_FLAGS[precision])
            return (f"{precision} on this CPU is allowed but slow: it has no native {precision} "
                    f"arithmetic ({flags}), so it is emulated, typically slower than fp32")
        return None
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    # TF32 and bf16 tensor cores arrive with compute capability 8.0 (NVIDIA Ampere architecture
    # whitepaper, 2020); older GPUs fall back silently (tf32) or emulate (bf16).
    if precision in ("tf32", "bf16") and major < 8:
        raise UserError(f"precision {precision} needs a GPU of compute capability 8.0 or newer; "
                        f"{device} is {major}.{minor}: use fp32 or fp16")
    return None


def default_precisions(device: str) -> tuple[str, ...]:
    """What `tune` tries by default: every precision the device runs natively."""
    if device == "cpu":
        return tuple(p for p in ("fp32", "bf16", "fp16") if cpu_native(p))
    import torch

    major, _ = torch.cuda.get_device_capability(device)
    return ("fp32", "tf32", "bf16", "fp16") if major >= 8 else ("fp32", "fp16")
