"""Checks of what a user asks to measure, done before anything runs or is stored.

Every problem is a one-line `UserError` saying what is wrong and what is accepted. Things that run
but are slow (fp16 on a CPU without native half-precision arithmetic) are not errors: they come
back as notes the command line prints as warnings.
"""

from __future__ import annotations

import math
import os
import re
from functools import cache

from nnscale.errors import UserError
from nnscale.records import ALL_MODES, MODES, PRECISIONS

MAX_BATCH = 1 << 24
# A week: longer than any point or world size should take, and far below the limits of what
# consumes a timeout (subprocess.communicate's select() and c10d's timedelta overflow near 1e9 s).
MAX_TIMEOUT_S = 7 * 24 * 3600.0
# More intra-op threads than the largest CPU nodes have hardware threads (2 x 192 cores x 2 SMT)
# only oversubscribes; the cap turns a typo such as 10000 into an error, not 10000 OS threads.
MAX_THREADS = 1024
_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")

# CPU instruction-set flags (Linux /proc/cpuinfo names) that give native low-precision arithmetic:
# AVX512-BF16 and AMX-BF16 for bf16; AVX512-FP16 and AMX-FP16 for fp16 (Intel 64 and IA-32
# Architectures Software Developer's Manual, vol. 1, ch. 5 and 18). Without them oneDNN emulates
# the format by converting to fp32, which runs but is slower than fp32 itself.
NATIVE_CPU_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


def parse_batches(text: str) -> tuple[int, ...] | None:
    """'1,2,4' -> (1, 2, 4); 'auto' -> None (search). Sorted, duplicates removed."""
    raw = str(text).strip().lower()
    if raw == "auto":
        return None
    accepted = "expected positive integers separated by commas (e.g. 1,2,4,8) or 'auto'"
    if not raw:
        raise UserError(f"empty --batch: {accepted}")
    sizes = []
    for part in raw.split(","):
        part = part.strip()
        if not re.fullmatch(r"[+-]?\d+", part):
            raise UserError(f"bad batch size {part!r} in --batch {text!r}: {accepted}")
        value = int(part)
        if value <= 0 or value > MAX_BATCH:
            raise UserError(f"bad batch size {value} in --batch {text!r}: {accepted}, at most {MAX_BATCH}")
        sizes.append(value)
    return tuple(sorted(set(sizes)))


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$")


def parse_size(text: str) -> int:
    """'512M', '2G', '1.5GiB', '1000000' -> bytes (K/M/G/T are binary multiples, as for memory)."""
    match = _SIZE.match(str(text).strip().lower())
    value = float(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " ") if match else 0
    if not match or value < 1:
        raise UserError(f"bad memory size {text!r}: expected a positive size like 512M, 2G or 1.5GiB")
    return int(value)


def parse_modes(text: str) -> tuple[str, ...]:
    """'inference', 'training' or 'both' (inference first); language models also 'decode' and
    'all' (inference = prefill, decode, training)."""
    if text == "both":
        return MODES
    if text == "all":
        return ALL_MODES
    if text not in ALL_MODES:
        raise UserError(f"unknown mode {text!r}: expected inference, training or both; for language "
                        "models also decode or all")
    return (text,)


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


def check_thread_option(value: int | None, option: str = "--threads") -> int | None:
    """A thread-count option as given: None (omitted: all usable cores) or 1 to MAX_THREADS.
    0 is refused: it used to mean "all cores" without saying so; omitting the option says it."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not 1 <= value <= MAX_THREADS):
        raise UserError(f"bad {option} {value!r}: expected an integer from 1 to {MAX_THREADS} "
                        f"(omit it for all usable cores, {usable_cores()} here)")
    return value


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours taskset and cgroup cpusets
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@cache
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_native(precision: str) -> bool:
    """Whether this CPU computes `precision` natively (fp32 always does)."""
    flags = NATIVE_CPU_FLAGS.get(precision)
    return flags is None or bool(cpu_flags() & set(flags))


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
