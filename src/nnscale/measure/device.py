"""The device's *measured* peak: GEMM FLOP/s per precision and memory bandwidth, cached per machine.

MFU needs a peak. Datasheet peaks are often out of reach (boost clocks, power limits, a CPU's
AVX-512 frequency drop), so nnscale measures what this machine's GEMM library actually reaches,
in the manner of the STREAM benchmark for bandwidth (McCalpin 1995, "Memory bandwidth and machine
balance in current high performance computers", IEEE TCCA Newsletter) and of the GEMM peak
measurements behind roofline plots (Williams, Waterman & Patterson 2009, "Roofline", CACM 52(4)):

- GEMM: C = A·B of random n×n matrices, 2n³ FLOPs per product. n grows (512, 1024, ...) while a
  product takes under 50 ms, up to 8192 (CPU: 4096); at each size products are repeated for
  ~`seconds` / 3 and the fastest repeat counts (see `_rate`); the peak is the best size's rate.
  Per precision: fp32, bf16 and fp16 (operands in that type), and on CUDA tf32 (fp32 operands,
  TF32 tensor cores).
- Bandwidth: `dst.copy_(src)` of a 256 MiB (CPU) or 2 GiB (CUDA) buffer; each copy reads and
  writes it once (STREAM "Copy" counts 2 × size bytes); the fastest repeat, as STREAM reports.

Results are cached as JSON in `$XDG_CACHE_HOME/nnscale/device-peaks.json` (default
`~/.cache/nnscale/`, XDG Base Directory Specification), keyed by host, device name and torch
version; `measure_device(..., refresh=True)` (`nnscale device --refresh`) measures again.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from nnscale.errors import UserError
from nnscale.measure.methodology import CpuTimer
from nnscale.measure.backends.torch import CudaTimer, cpu_name, set_tf32
from nnscale.measure.validate import check_device, check_threads

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SLOW_PRODUCT_S = 0.05  # grow n while one product is faster than this: larger ones are at peak


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    host: str
    device_name: str
    torch_version: str
    threads: int  # intra-op threads while measuring (CPU)
    gemm_flop_per_s: dict[str, float] = field(default_factory=dict)  # per precision
    gemm_n: dict[str, int] = field(default_factory=dict)  # the matrix size that gave the peak
    bandwidth_bytes_per_s: float | None = None
    measured_utc: str = ""
    seconds: float = 0.0  # how long measuring took

    @property
    def key(self) -> str:
        return profile_key(self.host, self.device_name, self.torch_version)


def profile_key(host: str, device_name: str, torch_version: str) -> str:
    return f"{host}|{device_name}|torch {torch_version}"


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nnscale" / "device-peaks.json"


def _load_all() -> dict:
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: measuring again rewrites it
    return data if isinstance(data, dict) else {}


def cached_profile(device_name: str, host: str | None = None) -> DeviceProfile | None:
    """The cached profile of `device_name` on this host with this torch, or None."""
    key = profile_key(host or socket.gethostname(), device_name, torch.__version__)
    entry = _load_all().get(key)
    try:
        return DeviceProfile(**entry) if entry else None
    except TypeError:
        return None


def save_profile(profile: DeviceProfile) -> Path:
    """Write atomically (temporary file + rename), keeping other machines' entries. A full disk or
    an unwritable cache directory: the temporary file is removed, the old cache kept, UserError."""
    path = cache_path()
    data = _load_all()
    data[profile.key] = asdict(profile)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".device-peaks-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException as e:  # a full disk, or SIGTERM / Ctrl-C while writing: no temp file left
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if not isinstance(e, OSError):
            raise
        raise UserError(f"cannot write the device cache {path}: {e.strerror or e}; free space "
                        "there or set XDG_CACHE_HOME to a writable directory") from None
    return path


def device_name(device: str) -> str:
    return cpu_name() if device == "cpu" else torch.cuda.get_device_name(torch.device(device))


def _rate(timer, fn, work: float, seconds: float) -> float:
    """Best work/time over repeats filling ~`seconds` (at least 3).

    The best, not the median: a peak is what the hardware can do, and on a shared machine every
    disturbance only makes a repeat slower (the minimum-time estimator of a noisy timing, as in
    Chen & Revels 2016, "Robust benchmarking in noisy environments", arXiv:1608.04295).
    """
    times, start = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        times.append(timer.time_ms(fn) / 1000.0)
    return work / min(times)


def gemm_peak(device: torch.device, precision: str, seconds: float) -> tuple[float, int]:
    """(best median FLOP/s, n) for square GEMMs at `precision` (module docstring)."""
    timer = CudaTimer(device) if device.type == "cuda" else CpuTimer()
    if device.type == "cuda":
        set_tf32(precision == "tf32")
    n_max = 8192 if device.type == "cuda" else 4096
    best, best_n, n = 0.0, 0, 512
    while n <= n_max:
        a = torch.randn(n, n, device=device).to(DTYPES[precision])
        b = torch.randn(n, n, device=device).to(DTYPES[precision])
        out = torch.empty(n, n, device=device, dtype=DTYPES[precision])

        def product(a=a, b=b, out=out):
            torch.mm(a, b, out=out)

        timer.time_ms(product)  # warm-up: the first call pays for library and thread-pool set-up
        rate = _rate(timer, product, 2.0 * n**3, seconds / 3)
        if rate > best:
            best, best_n = rate, n
        if 2.0 * n**3 / rate > SLOW_PRODUCT_S:  # the fastest product at this size
            break
        n *= 2
    if device.type == "cuda":
        set_tf32(False)
    return best, best_n


def copy_bandwidth(device: torch.device, seconds: float) -> float:
    size = (2 << 30) if device.type == "cuda" else (256 << 20)
    src = torch.ones(size // 4, device=device)
    dst = torch.empty_like(src)
    timer = CudaTimer(device) if device.type == "cuda" else CpuTimer()
    timer.time_ms(lambda: dst.copy_(src))  # first touch of dst's pages
    return _rate(timer, lambda: dst.copy_(src), 2.0 * size, seconds)


def measure_device(
    device: str = "cpu",
    threads: int = 0,
    precisions: tuple[str, ...] | None = None,
    seconds_per_test: float = 1.0,
    refresh: bool = False,
) -> tuple[DeviceProfile, bool]:
    """(profile, came from the cache). Measures and caches when there is no profile or `refresh`."""
    device = check_device(device)
    name = device_name(device)
    if not refresh:
        cached = cached_profile(name)
        if cached is not None:
            return cached, True
    threads = check_threads(threads)
    torch.set_num_threads(threads)
    dev = torch.device(device)
    if precisions is None:
        precisions = ("fp32", "bf16", "fp16") if device == "cpu" else ("fp32", "tf32", "bf16", "fp16")
    start = time.perf_counter()
    gemm, sizes = {}, {}
    for precision in precisions:
        gemm[precision], sizes[precision] = gemm_peak(dev, precision, seconds_per_test)
    bandwidth = copy_bandwidth(dev, seconds_per_test)
    profile = DeviceProfile(
        host=socket.gethostname(), device_name=name, torch_version=torch.__version__,
        threads=torch.get_num_threads(), gemm_flop_per_s=gemm, gemm_n=sizes,
        bandwidth_bytes_per_s=bandwidth, measured_utc=datetime.now(timezone.utc).isoformat(),
        seconds=time.perf_counter() - start,
    )
    save_profile(profile)
    return profile, False
