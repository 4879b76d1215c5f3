"""The JAX backend: the Keras 3 twin of a zoo model on JAX, always through `jax.jit`, CPU or CUDA.

Methodology (docs/methodology.md, "Frameworks"):
- The step is one jitted function over explicit state, Keras' stateless API as in its guide
  "Writing a training loop from scratch in JAX"
  (https://keras.io/guides/writing_a_custom_training_loop_in_jax/): `model.stateless_call` for the
  forward pass, `jax.value_and_grad` of the torch backend's loss, then
  `SGD(momentum=0.9).stateless_apply`. The state (trainable and non-trainable variables, optimizer
  slots) goes in and comes out of the step, its input buffers donated (`donate_argnums`) so XLA
  updates the weights in place as the other frameworks do. Inference is the jitted
  `stateless_call(..., training=False)`.
- JAX always compiles: `Workload.compile` is normalised to True at the edge (`frameworks`). The
  first call traces and compiles; `measure_point` times it apart, as compile time.
- Sync: JAX dispatches asynchronously — a jitted call returns futures before the computation ends
  (https://docs.jax.dev/en/latest/async_dispatch.html) — so each step ends with
  `jax.block_until_ready` on everything it returned (the output, or the loss and the new state).
- Threads: XLA's CPU backend takes its thread count from XLA_FLAGS
  (`--xla_cpu_multi_thread_eigen`, `intra_op_parallelism_threads`), read once when the backend
  starts, so the flags are set before `import jax` and recorded.
- Devices: JAX_PLATFORMS is set to the point's platform before the import (a CPU point never lands
  on a GPU); on CUDA the GPU is `jax_default_device`, GPU memory is not preallocated
  (XLA_PYTHON_CLIENT_PREALLOCATE=false,
  https://docs.jax.dev/en/latest/gpu_memory_allocation.html) and the peak is the device's
  `memory_stats()['peak_bytes_in_use']`. fp32 matmuls and convolutions are IEEE fp32
  (`jax_default_matmul_precision="highest"`; JAX's default lets Ampere GPUs use TF32), tf32 asks
  for "tensorfloat32". On CPU the peak is the growth of the process's peak RSS, as for torch.
- A memory cap on CUDA is not enforced (XLA's allocator has only a fraction of the device's memory
  as its limit): an allocation beyond what the GPU has fails as RESOURCE_EXHAUSTED, stored as oom.
"""

from __future__ import annotations

import os

from nnscale.measure.backends.base import Prepared, cpu_name, device_index
from nnscale.measure.backends.keras_common import (KerasBackend, build_model, hwc_shape, import_keras,
                                                   make_optimizer, num_classes, training_loss)
from nnscale.measure.methodology import CpuTimer
from nnscale.records import Workload


def xla_environment(workload: Workload, threads: int) -> dict[str, str]:
    """Environment JAX must see before its import: platform, CPU threads, GPU allocator."""
    env = {"JAX_PLATFORMS": "cpu" if workload.device == "cpu" else "cuda"}
    flags = os.environ.get("XLA_FLAGS", "")
    if workload.device == "cpu":
        multi = "true" if threads > 1 else "false"
        flags = f"{flags} --xla_cpu_multi_thread_eigen={multi} intra_op_parallelism_threads={threads}"
    else:
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    env["XLA_FLAGS"] = flags.strip()
    return env


class JaxBackend(KerasBackend):
    framework = "jax"
    held = ("model", "state")  # XLA's RESOURCE_EXHAUSTED is among the base's OOM_MARKERS

    def __init__(self) -> None:
        super().__init__()
        self._device = None
        self.state = None  # the training state after the last step (in-process checks)

    def build(self, workload: Workload, seed: int, threads: int) -> Prepared:
        w = workload
        env = xla_environment(w, threads)
        import sys

        if "jax" not in sys.modules:
            os.environ.update(env)
        keras = import_keras("jax")
        import jax

        if w.device == "cpu":
            device = jax.devices("cpu")[0]
            name = cpu_name()
        else:
            gpus = jax.devices("gpu")
            index = device_index(w.device)
            if index >= len(gpus):
                raise RuntimeError(f"JAX sees {len(gpus)} GPUs, not {w.device}: is jax[cuda12] installed?")
            device = gpus[index]
            name = device.device_kind
            jax.config.update("jax_default_matmul_precision",
                              "tensorfloat32" if w.precision == "tf32" else "highest")
            # Weights and inputs must be made on the point's GPU. Not on the CPU, where there is one
            # device anyway: with the option set, the jitted ResNet-50 v1 step of the model built
            # first ran 7 % slower here than an identical one (docs/benchmarks.md, frameworks).
            jax.config.update("jax_default_device", device)
        self._device = device
        self.load_definitions(w)
        self.host_peak.reset()
        model = build_model(keras, w, seed)
        self.model = model
        kx, ky = jax.random.split(jax.random.key(seed))
        x = jax.random.normal(kx, (w.batch_size, *hwc_shape(w.input_shape)), dtype="float32")
        y = jax.random.randint(ky, (w.batch_size,), 0, num_classes(model) or 1)
        x, y = jax.device_put((x, y), device)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        if w.mode == "inference":
            @jax.jit
            def infer(tv, ntv, x):
                out, _ = model.stateless_call(tv, ntv, x, training=False)
                return out

            def step():
                return jax.block_until_ready(infer(trainable, non_trainable, x))

        else:
            opt = make_optimizer(keras)
            opt.build(model.trainable_variables)
            self.state = (trainable, non_trainable, [v.value for v in opt.variables])

            def loss_fn(tv, ntv, x, y):
                out, ntv = model.stateless_call(tv, ntv, x, training=True)
                return training_loss(keras, out, y), ntv

            grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

            def train_step(tv, ntv, ov, x, y):
                (loss, ntv), grads = grad_fn(tv, ntv, x, y)
                tv, ov = opt.stateless_apply(ov, grads, tv)
                return loss, (tv, ntv, ov)

            # Donating the state lets XLA write the new weights over the old (no second copy).
            train = jax.jit(train_step, donate_argnums=(0, 1, 2))

            def step():
                loss, self.state = jax.block_until_ready(train(*self.state, x, y))
                return loss

        info = {
            "framework_version": jax.__version__,
            **self.keras_info(keras),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "jax_platform": device.platform,
        }
        return Prepared(step=step, timer=CpuTimer(), threads=threads, device_name=name, info=info)

    def peak_memory_bytes(self) -> int | None:
        if self._device is not None and self._device.platform != "cpu":
            stats = self._device.memory_stats() or {}
            peak = stats.get("peak_bytes_in_use")
            return None if peak is None else int(peak)
        return super().peak_memory_bytes()
