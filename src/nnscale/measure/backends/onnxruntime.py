"""The ONNX Runtime backend: the torch zoo model exported to ONNX, run by an `InferenceSession`.

Inference only (ONNX Runtime's training is a separate product; nnscale refuses training at the
edge). Methodology (docs/methodology.md, "Frameworks"):
- Export, in the worker: `torch.onnx.export(..., dynamo=True, opset_version=18)`, the exporter
  torch recommends (https://docs.pytorch.org/docs/stable/onnx_export.html), with the point's fixed
  input shape, as every other framework runs it; should it fail for a model, the TorchScript
  exporter (`dynamo=False`) is tried. Exporter, opset and export time are stored with the point.
  Export runs before the memory probe starts; the torch model is freed before the session is made.
- Session: `SessionOptions` with `intra_op_num_threads` = the workload's threads, one inter-op
  thread and sequential execution, all graph optimisations (ORT_ENABLE_ALL, the default)
  (https://onnxruntime.ai/docs/performance/tune-performance/threading.html). Providers:
  CPUExecutionProvider; on CUDA CUDAExecutionProvider first — and an error if the session did not
  take it, rather than measuring the CPU while calling it a GPU. The providers in use are stored.
- The step: `run_with_iobinding` with the input and a preallocated output bound on the device
  (https://onnxruntime.ai/docs/api/python/api_summary.html#iobinding), so no step pays a host copy
  or an output allocation. `Run` returns when the result is computed: the CUDA provider
  synchronises its stream at the end of a run unless told not to
  ("disable_synchronize_execution_providers"), which nnscale does not.
- Memory: CPU, the growth of the process's peak RSS from session creation on; CUDA, unknown (ONNX
  Runtime has no public peak-memory counter), stored as None.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings

from nnscale.measure.backends.base import Backend, Prepared, cpu_name, device_index
from nnscale.measure.methodology import CpuTimer
from nnscale.records import Workload

OPSET = 18


def export_onnx(workload: Workload, path: str, seed: int = 0) -> dict:
    """Export the zoo model for `workload`'s fixed input shape to `path`; what was used (module doc)."""
    import torch

    from nnscale.zoo import create_model

    torch.manual_seed(seed)
    model = create_model(workload.model).eval()
    x = torch.randn((workload.batch_size, *workload.input_shape))
    start = time.perf_counter()
    errors = []
    for dynamo in (True, False):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                kwargs = {"dynamo": dynamo, "opset_version": OPSET, "input_names": ["input"],
                          "output_names": ["output"]}
                if dynamo:
                    kwargs["verbose"] = False
                torch.onnx.export(model, (x,), path, **kwargs)
            exporter = "dynamo" if dynamo else "torchscript"
            break
        except Exception as exc:  # noqa: BLE001 - try the other exporter, report both if both fail
            errors.append(f"{'dynamo' if dynamo else 'torchscript'}: {str(exc).splitlines()[0][:120]}")
    else:
        raise RuntimeError(f"ONNX export of {workload.model} failed ({'; '.join(errors)})")
    import onnx

    proto = onnx.load(path, load_external_data=False)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return {"onnx_exporter": exporter, "onnx_opset": opset, "onnx_export_s": time.perf_counter() - start,
            "torch_version": torch.__version__}


def session_options(ort, threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: the last stderr line of a failed point is its error
    return so


def providers_for(ort, device: str) -> list:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RuntimeError(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider: "
                           "install onnxruntime-gpu for --device cuda")
    index = device_index(device)
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


class OnnxRuntimeBackend(Backend):
    framework = "onnxruntime"
    held = ("session",)

    def __init__(self) -> None:
        super().__init__()
        self._cuda = False
        self.session = None  # kept for in-process checks (tests, benchmarks)

    def build(self, workload: Workload, seed: int, threads: int) -> Prepared:
        w = workload
        if w.mode != "inference":
            raise ValueError("onnxruntime runs inference only")
        import numpy as np
        import onnxruntime as ort
        import torch

        torch.set_num_threads(threads)  # for the export
        with tempfile.TemporaryDirectory(prefix="nnscale-onnx-") as tmp:
            # A fixed name in a directory of its own: the model name can be an absolute or a
            # ../ prototxt path, and os.path.join would put the export next to it.
            path = os.path.join(tmp, "model.onnx")
            exported = export_onnx(w, path, seed)
            import gc

            gc.collect()  # the torch model is gone: what follows is the session's
            self.host_peak.reset()
            self._cuda = w.device != "cpu"
            session = ort.InferenceSession(path, session_options(ort, threads),
                                           providers=providers_for(ort, w.device))
        used = session.get_providers()
        if self._cuda and "CUDAExecutionProvider" not in used:
            raise RuntimeError(f"onnxruntime did not take the CUDA provider (in use: {', '.join(used)})")
        self.session = session
        kind, index = ("cuda", device_index(w.device)) if self._cuda else ("cpu", 0)
        rng = np.random.default_rng(seed)
        inp = session.get_inputs()[0]
        x = rng.standard_normal((w.batch_size, *w.input_shape), dtype=np.float32)
        binding = session.io_binding()
        binding.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_numpy(x, kind, index))
        for out in session.get_outputs():
            if all(isinstance(d, int) for d in out.shape):  # static: allocate once, reuse
                value = ort.OrtValue.ortvalue_from_shape_and_type(out.shape, np.float32, kind, index)
                binding.bind_ortvalue_output(out.name, value)
            else:
                binding.bind_output(out.name, kind, index)
        run_with_iobinding = session.run_with_iobinding

        def step():
            run_with_iobinding(binding)
            return binding

        name = torch.cuda.get_device_name(index) if self._cuda else cpu_name()
        info = dict(exported, framework_version=ort.__version__, ort_providers=",".join(used),
                    ort_intra_op_threads=threads, ort_inter_op_threads=1)
        return Prepared(step=step, timer=CpuTimer(), threads=threads, device_name=name, info=info)

    def peak_memory_bytes(self) -> int | None:
        return None if self._cuda else super().peak_memory_bytes()
