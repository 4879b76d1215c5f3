"""One point in-process with the torch backend and tiny nets: statistics with units, memory, the
training step, precisions, and what an allocation failure or an error becomes."""

from __future__ import annotations

import pytest
import torch

from nnscale.errors import UserError
from nnscale.measure.backends.base import Backend, get_backend, looks_like_oom
from nnscale.measure.point import derive, measure_point
from nnscale.host import cpu_native
from nnscale.measure.validate import check_device, check_precision
from nnscale.records import Workload
from nnscale.report.points import latency

from measure_helpers import SHORT


def tiny(mode="inference", batch=4, **kw):
    model = kw.pop("model", "test-tiny-resnet")
    shape = (3, 8, 8) if model == "test-tiny-mlp" else (3, 32, 32)
    return Workload(model, mode, batch, shape, threads=1, **kw)


def test_inference_point_has_statistics_with_units():
    m = measure_point(tiny(), SHORT)
    assert m.status in ("ok", "unstable"), m.error
    s = m.stats
    assert s.timing.iterations == len(m.samples_ms) >= 2
    assert s.throughput.samples_per_s == pytest.approx(4 * 1000 / s.timing.median_ms)
    assert s.throughput.samples_per_s_ci_low <= s.throughput.samples_per_s <= s.throughput.samples_per_s_ci_high
    assert s.timing.mean_ci_low_ms <= s.timing.mean_ms <= s.timing.mean_ci_high_ms
    assert s.timing.p50_ms <= s.timing.p95_ms <= s.timing.p99_ms
    assert s.compute.peak_memory_bytes > 0 and s.host.threads == 1 and s.timing.compile_s is None
    assert s.timing.warmup_iters >= 1 and s.timing.first_step_ms > 0 and s.host.device_name


@pytest.mark.parametrize("precision,channels_last", [("fp32", False), ("bf16", True), ("fp16", False)])
def test_training_step_runs_in_each_cpu_precision(precision, channels_last):
    m = measure_point(tiny("training", 2, precision=precision, channels_last=channels_last), SHORT)
    assert m.status in ("ok", "unstable"), m.error
    assert latency(m, 50) is None  # latency is an inference notion
    assert m.stats.host.data_layout == ("NHWC" if channels_last else "NCHW")  # as every backend says


def test_training_updates_the_weights():
    prepared = get_backend("torch").prepare(tiny("training", 2, model="test-tiny-mlp"))
    losses = [float(prepared.step().detach()) for _ in range(20)]
    assert losses[-1] < losses[0]  # the step returns the loss; SGD with momentum learns the fixed batch


def test_memory_grows_with_the_batch():
    # In fresh worker processes, as a sweep measures: inside this long-lived test process the
    # allocator reuses pages earlier tests made resident, and the resident peak need not grow.
    from nnscale.measure.runner import PointSpec, run_point

    small = run_point(PointSpec(tiny(batch=2), SHORT, 120.0)).stats.compute.peak_memory_bytes
    big = run_point(PointSpec(tiny(batch=512), SHORT, 120.0)).stats.compute.peak_memory_bytes
    assert big > small + 4 * 2**20  # 512 images of 3x32x32 fp32 activations: several MiB


class Failing(Backend):
    def __init__(self, exc):
        self.exc = exc
        self.closed = False

    def build(self, workload, seed, threads):
        raise self.exc

    def peak_memory_bytes(self):
        return None

    def close(self):
        self.closed = True


@pytest.mark.parametrize("exc,status", [
    (MemoryError(), "oom"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
                  "you tried to allocate 8589934592 bytes. Error code 12"), "oom"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "oom"),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied\nmore"), "error"),
])
def test_failures_become_points(exc, status):
    backend = Failing(exc)
    if status == "oom" and isinstance(exc, torch.OutOfMemoryError):
        backend = type("TorchFailing", (Failing,), {"is_oom": get_backend("torch").is_oom})(exc)
    m = measure_point(tiny(), SHORT, backend=backend)
    assert m.status == status and backend.closed
    assert "\n" not in m.error and m.error.startswith(type(exc).__name__)


def test_oom_markers():
    assert looks_like_oom("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate")
    assert looks_like_oom("std::bad_alloc") and not looks_like_oom("shape mismatch")


def test_derive_adds_flops_and_mfu():
    m = measure_point(tiny(batch=2, model="test-tiny-mlp"), SHORT)
    d = derive(m, 1000, 1e9)
    assert d.stats.compute.achieved_flop_per_s == pytest.approx(1000 * m.stats.throughput.samples_per_s)
    assert d.stats.compute.mfu == pytest.approx(d.stats.compute.achieved_flop_per_s / 1e9)
    assert derive(m, 1000, None).stats.compute.mfu is None


def test_device_and_precision_checks():
    assert check_device("cpu") == "cpu"
    with pytest.raises(UserError, match="expected cpu, cuda or cuda:N"):
        check_device("tpu")
    with pytest.raises(UserError, match="tf32"):
        check_precision("cpu", "tf32")
    note = check_precision("cpu", "fp16")
    assert (note is None) == cpu_native("fp16")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="sees no CUDA GPU"):
            check_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16", "fp16"])
def test_cuda_training_point(precision):
    check_precision("cuda:0", precision)
    w = Workload("test-tiny-resnet", "training", 8, (3, 32, 32), device="cuda:0", precision=precision,
                 channels_last=True, threads=1)
    m = measure_point(w, SHORT)
    assert m.status in ("ok", "unstable"), m.error
    assert m.stats.compute.peak_memory_bytes > 0 and "NVIDIA" in m.stats.host.device_name or m.stats.host.device_name
