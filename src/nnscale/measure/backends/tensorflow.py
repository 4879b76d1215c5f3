"""The TensorFlow backend: the Keras 3 twin of a zoo model on TensorFlow, CPU or CUDA.

Methodology (docs/methodology.md, "Frameworks"):
- The step is a `tf.function` graph (https://www.tensorflow.org/guide/function); with
  `Workload.compile` it is also compiled by XLA (`jit_compile=True`,
  https://www.tensorflow.org/xla#explicit_compilation_with_tffunctionjit_compiletrue). The first
  call traces (and compiles): `measure_point` times it apart, as compile time, never as a sample.
- Inference: `model(x, training=False)`. Training: forward, the torch backend's loss, gradients by
  `tf.GradientTape`, then `SGD(momentum=0.9).apply` — the step of Keras' "Writing a training loop
  from scratch in TensorFlow" (https://keras.io/guides/writing_a_custom_training_loop_in_tensorflow/),
  all inside the one tf.function.
- Sync: on a GPU, TensorFlow ops return before the kernels finish; reading a value back with
  `.numpy()` waits for them. Each step fetches one scalar (the loss; in inference the first logit,
  sliced inside the graph while the function still returns the whole output, so no optimiser can
  prune the batch away). On CPU the same fetch costs nanoseconds.
- Threads: `tf.config.threading` intra-op = the workload's threads, inter-op = 1 (one op at a time,
  as torch's eager mode runs them), set before the runtime starts and recorded.
- CUDA: fp32 is IEEE fp32 (TensorFlow enables TF32 by default on Ampere and newer:
  `tf.config.experimental.enable_tensor_float_32_execution(False)`), tf32 turns it on. Memory grows
  on demand (`set_memory_growth`) or is capped with a logical device's `memory_limit`; the peak is
  `tf.config.experimental.get_memory_info('GPU:0')['peak']` since `reset_memory_stats`.
- CPU: the peak is the growth of the process's peak RSS, as for torch.
"""

from __future__ import annotations

from nnscale.measure.backends.base import Prepared, cpu_name, device_index
from nnscale.measure.backends.keras_common import (KerasBackend, build_model, hwc_shape, import_keras,
                                                   make_optimizer, num_classes, training_loss)
from nnscale.measure.methodology import CpuTimer
from nnscale.records import Workload


def configure_runtime(tf, workload: Workload, threads: int, cap_bytes: int | None) -> tuple[str, str]:
    """Threads, visible devices, memory and TF32, before TensorFlow's runtime starts.

    Returns (TensorFlow device string, device name). TensorFlow refuses these settings once the
    runtime is initialised (RuntimeError), which in a fresh worker it is not yet.
    """
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    gpus = tf.config.list_physical_devices("GPU")
    if workload.device == "cpu":
        tf.config.set_visible_devices([], "GPU")  # a CPU point must not place ops on a GPU
        return "/CPU:0", cpu_name()
    index = device_index(workload.device)
    if index >= len(gpus):
        raise RuntimeError(f"TensorFlow sees {len(gpus)} GPUs, not {workload.device}: is "
                           "tensorflow[and-cuda] installed?")
    gpu = gpus[index]
    tf.config.set_visible_devices([gpu], "GPU")  # it becomes /GPU:0
    if cap_bytes is not None:
        tf.config.set_logical_device_configuration(
            gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=max(1, cap_bytes >> 20))])
    else:
        tf.config.experimental.set_memory_growth(gpu, True)
    tf.config.experimental.enable_tensor_float_32_execution(workload.precision == "tf32")
    details = tf.config.experimental.get_device_details(gpu)
    return "/GPU:0", details.get("device_name", "GPU")


class TensorFlowBackend(KerasBackend):
    framework = "tensorflow"
    oom_types = KerasBackend.oom_types + ("ResourceExhaustedError",)  # "OOM when allocating tensor"

    def __init__(self) -> None:
        super().__init__()
        self._gpu = False
        self._cap: int | None = None

    def limit_memory(self, cap_bytes: int, device: str) -> None:
        if device.startswith("cuda"):
            self._cap = int(cap_bytes)  # applied in prepare, before the GPU is initialised
            return
        super().limit_memory(cap_bytes, device)

    def build(self, workload: Workload, seed: int, threads: int) -> Prepared:
        w = workload
        keras = import_keras("tensorflow")
        import tensorflow as tf

        device, name = configure_runtime(tf, w, threads, self._cap)
        self._gpu = device.startswith("/GPU")
        self.load_definitions(w)
        if self._gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
        self.host_peak.reset()
        with tf.device(device):
            model = build_model(keras, w, seed)
            self.model = model
            x = tf.random.stateless_normal((w.batch_size, *hwc_shape(w.input_shape)), seed=[seed, 0])
            classes = num_classes(model) or 1
            y = tf.random.stateless_uniform((w.batch_size,), seed=[seed, 1], maxval=classes,
                                            dtype=tf.int32)
        jit = bool(w.compile)

        if w.mode == "inference":
            @tf.function(jit_compile=jit)
            def infer(x):
                out = model(x, training=False)
                return out, tf.reshape(out, [-1])[0]

            # No tf.device in the step: the only visible device is the point's, and TensorFlow
            # places ops there by default (a GPU over the CPU).
            def step():
                out, probe = infer(x)
                probe.numpy()  # waits for the device (module docstring)
                return out

        else:
            opt = make_optimizer(keras)
            opt.build(model.trainable_variables)  # slots exist before tracing

            @tf.function(jit_compile=jit)
            def train(x, y):
                with tf.GradientTape() as tape:
                    loss = training_loss(keras, model(x, training=True), y)
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply(grads, model.trainable_variables)
                return loss

            def step():
                return train(x, y).numpy()  # waits for the device (module docstring)

        info = {
            "framework_version": tf.__version__,
            **self.keras_info(keras),
            "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        }
        return Prepared(step=step, timer=CpuTimer(), threads=threads, device_name=name, info=info)

    def peak_memory_bytes(self) -> int | None:
        if self._gpu:
            import tensorflow as tf

            return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
        return super().peak_memory_bytes()
