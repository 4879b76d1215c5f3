"""The PyTorch backend: model, synthetic inputs and the timed step of a workload, on CPU or CUDA.

Methodology (docs/methodology.md):
- Inference: `model.eval()` under `torch.inference_mode()` (no autograd bookkeeping at all).
- Training step (`TrainingStep`, shared with DDP and FSDP ranks): forward + cross-entropy loss +
  backward + optimizer step, SGD with momentum 0.9 (`Backend.SGD_*`), gradients set to None.
- Precision: fp32 is true IEEE fp32 (TF32 explicitly off: cuDNN convolutions default to TF32);
  tf32 switches TF32 on for matmuls and convolutions; bf16 and fp16 run under automatic mixed
  precision (`torch.autocast`, fp32 master weights), fp16 training with a gradient scaler
  (https://docs.pytorch.org/docs/stable/amp.html). On CPU autocast bf16 is also the faster choice:
  ResNet-50 inference bs 16 with channels-last here ran 518 ms/step under autocast against 653 ms
  for a model cast to bf16.
- CUDA: `cudnn.benchmark` on (fixed shapes, so autotuning pays once, during warm-up), timing with
  CUDA events on the current stream and a synchronize after each step, peak memory from the
  caching allocator (`max_memory_allocated`).
- CPU: timing with perf_counter_ns (CPU kernels are synchronous); peak memory is the growth of
  the process's peak resident set (VmHWM) since `prepare` began, reset through
  /proc/self/clear_refs (proc(5), "5" resets the peak RSS; Linux >= 4.0).
- Synthetic inputs live on the device, made with a fixed seed; labels likewise.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from nnscale.measure.backends.base import Backend, Prepared, cpu_name
from nnscale.measure.lm import lm_step
from nnscale.measure.methodology import CpuTimer
from nnscale.records import Workload
from nnscale.zoo import create_model, model_info

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class CudaTimer:
    """GPU time of one step: events recorded on the current stream around it, then synchronize.

    The events bracket everything the step enqueues, including gaps where the GPU waits for the CPU
    to launch kernels, so a launch-bound step is timed as slow as it is.
    """

    __slots__ = ("_start", "_end", "_stream")

    def __init__(self, device: torch.device) -> None:
        torch.cuda.synchronize(device)  # nothing from set-up may run inside the first sample
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)
        self._stream = torch.cuda.current_stream(device)

    def time_ms(self, step) -> float:
        self._start.record(self._stream)
        step()
        self._end.record(self._stream)
        self._end.synchronize()
        return self._start.elapsed_time(self._end)


def set_tf32(enabled: bool) -> None:
    """TF32 on or off for CUDA matmuls and cuDNN convolutions.

    PyTorch >= 2.9 has per-backend `fp32_precision` settings and warns that the older `allow_tf32`
    flags will be deprecated (https://docs.pytorch.org/docs/stable/notes/cuda.html, "TensorFloat-32
    (TF32) on Ampere (and later) devices"); mixing the two APIs is an error, so use only one.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(cudnn, "conv"):
        value = "tf32" if enabled else "ieee"
        matmul.fp32_precision = value
        cudnn.conv.fp32_precision = value
    else:  # torch < 2.9
        matmul.allow_tf32 = enabled
        cudnn.allow_tf32 = enabled


def _logits(out):
    """The class scores of a model's output (some return tuples or objects with .logits)."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        return out[0]
    raise TypeError(f"cannot find the logits in a {type(out).__name__} output")


def training_loss(out, y):
    """The training step's loss: cross-entropy on class scores (N, classes). A net whose output is
    not a score per class (the seed's single Caffe convolution gives a 3x96x96 map) gets a mean
    squared error against zero instead: as cheap as any elementwise loss, and the backward pass through
    the network, the part that is measured, is the same."""
    scores = _logits(out)
    if scores.dim() == 2:
        return F.cross_entropy(scores, y)
    return scores.float().square().mean()


class TrainingStep:
    """What every torch training step shares — the single-device sweep's and each DDP/FSDP rank's
    (distributed/train_state.py): the model on the device (channels-last when asked), autocast for
    bf16/fp16, SGD with momentum and, in fp16, a gradient scaler; on CUDA `cudnn.benchmark` and TF32
    only when asked. The optimizer is made by `make_optimizer`, once a strategy has wrapped the
    module (FSDP replaces the parameters by sharded DTensors, which the optimizer must hold); its
    momentum buffers appear at its first step, so an inference step that never calls it allocates
    nothing.
    """

    def __init__(self, model_name: str, precision: str, device: torch.device, channels_last: bool):
        self.device, self.precision, self.channels_last = device, precision, channels_last
        if device.type == "cuda":  # fixed shapes: autotuning pays once, during warm-up
            torch.backends.cudnn.benchmark = True
            set_tf32(precision == "tf32")
        with torch.device(device):
            module = create_model(model_name)
        module = module.to(device)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module
        self.optimizer: torch.optim.Optimizer | None = None
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        self._dtype = AMP_DTYPES.get(precision)

    def inputs(self, batch: int, shape: tuple[int, ...]) -> torch.Tensor:
        """A random image batch on the device, in the module's memory format."""
        x = torch.randn((batch, *shape), device=self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def amp(self):
        """The autocast context of the precision (fp32 master weights), or a null context."""
        if self._dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._dtype)

    def make_optimizer(self, params=None) -> None:
        params = self.module.parameters() if params is None else params
        self.optimizer = torch.optim.SGD(params, lr=Backend.SGD_LR, momentum=Backend.SGD_MOMENTUM)

    def optimizer_step(self, loss, after_backward=None) -> None:
        """Backward (scaled in fp16), `after_backward()` if given (a phase mark), the optimizer
        step, gradients set to None."""
        if self.optimizer is None:
            self.make_optimizer()
        if self.scaler is None:
            loss.backward()
            if after_backward is not None:
                after_backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            if after_backward is not None:
                after_backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)


class TorchBackend(Backend):
    framework = "torch"
    # torch.OutOfMemoryError (CUDA's caching allocator; torch.cuda.OutOfMemoryError before 2.5).
    oom_types = Backend.oom_types + ("OutOfMemoryError",)

    def __init__(self) -> None:
        super().__init__()
        self._device: torch.device | None = None

    def limit_memory(self, cap_bytes: int, device: str) -> None:
        if device.startswith("cuda"):
            # The caching allocator refuses to grow beyond this fraction of the GPU's memory,
            # raising torch.OutOfMemoryError like a real OOM.
            dev = torch.device(device)
            total = torch.cuda.get_device_properties(dev).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, cap_bytes / total), dev)
            return
        super().limit_memory(cap_bytes, device)

    def data_layout(self, workload: Workload) -> str:
        return "tokens" if model_info(workload.model).is_lm else super().data_layout(workload)

    def build(self, workload: Workload, seed: int, threads: int) -> Prepared:
        w = workload
        torch.manual_seed(seed)  # seeds every device's generator
        if w.threads:
            torch.set_num_threads(threads)
        device = torch.device(w.device)
        self._device = device
        info = model_info(w.model)  # loads the zoo's modules: before the probe
        self.host_peak.reset()
        if device.type == "cuda":
            torch.cuda.set_device(device)
            torch.cuda.reset_peak_memory_stats(device)
        train = TrainingStep(w.model, w.precision, device, w.channels_last and not info.is_lm)
        model = train.module
        if info.is_lm:  # token ids in, three modes (measure/lm.py)
            return self._prepared(w, device, lm_step(model, w, device, train.amp, train.optimizer_step))
        x = train.inputs(w.batch_size, w.input_shape)
        net = torch.compile(model) if w.compile else model
        amp = train.amp

        if w.mode == "inference":
            model.eval()

            def step():
                with torch.inference_mode(), amp():
                    return net(x)

        else:
            model.train()
            y = torch.randint(0, info.num_classes, (w.batch_size,), device=device)

            def step():
                with amp():
                    loss = training_loss(net(x), y)
                train.optimizer_step(loss)
                return loss

        return self._prepared(w, device, step)

    @staticmethod
    def _prepared(w: Workload, device: torch.device, step) -> Prepared:
        if device.type == "cuda":
            timer, name = CudaTimer(device), torch.cuda.get_device_name(device)
        else:
            timer, name = CpuTimer(), cpu_name()
        info = {"framework_version": torch.__version__}
        return Prepared(step=step, timer=timer, threads=torch.get_num_threads(), device_name=name,
                        info=info)

    def peak_memory_bytes(self) -> int | None:
        if self._device is not None and self._device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self._device))
        return super().peak_memory_bytes()

    def close(self) -> None:
        super().close()
        if self._device is not None and self._device.type == "cuda":
            torch.cuda.empty_cache()
