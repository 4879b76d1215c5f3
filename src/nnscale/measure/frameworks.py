"""Which frameworks nnscale measures and what each can run: one `FrameworkSpec` per framework.

Every caller asks the spec — the command line's choices and checks (`sweep`, `tune`), a study's plan
(`study.runner`), the progress labels and the worker (`measure.backends.get_backend`) — so adding a framework is one
entry in `SPECS` plus its backend (docs/methodology.md, "Frameworks"). Torch-free and
framework-free: modules are found with `importlib.util.find_spec`, which does not import them, so the
parent of a sweep never loads TensorFlow, JAX or ONNX Runtime. Every problem is a one-line
`UserError` (exit code 2 on the command line).

What `Workload` fields mean per framework:

| framework | compile | channels_last | precisions | modes |
|---|---|---|---|---|
| torch | `torch.compile` | NCHW -> NHWC memory format | fp32 tf32 bf16 fp16 | all |
| tensorflow | XLA: `tf.function(jit_compile=True)`; off: a plain `tf.function` graph | refused: Keras is always NHWC | fp32 tf32 bf16; fp16 inference | inference, training |
| jax | always `jax.jit` (normalised to on) | refused: Keras is always NHWC | fp32 tf32 bf16; fp16 inference | inference, training |
| onnxruntime | refused: the session always optimises the graph | refused | fp32 | inference |
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from nnscale.errors import UserError

DEVICE_KINDS = ("cpu", "cuda")


@dataclass(frozen=True, slots=True)
class FrameworkSpec:
    name: str
    backend: str  # "module:Class" of its `Backend`, imported only in a worker
    modules: tuple[str, ...]  # what must be importable
    extra: str | None  # the pip extra that installs them
    modes: tuple[str, ...]
    precisions: tuple[str, ...]
    fp16_training: bool  # False: fp16 training is refused (no loss scaling; gradients underflow)
    compile_label: str  # what `compile` is called in labels ("" where it cannot be asked for)
    run_names: tuple[str, str]  # what ran, uncompiled / compiled: the stored framework_mode
    keras_twin: bool = False  # runs the zoo model's Keras twin (nnscale.kerasnets), not the torch one
    always_compiled: bool = False
    compile_refused: str = ""  # why --compile means nothing here; "" when it is allowed
    channels_last_refused: str = ""  # why --channels-last means nothing here; "" when it is allowed
    modes_note: str = ""  # added to a refused mode's reason
    devices: tuple[str, ...] = DEVICE_KINDS
    # Fresh worker to first step: interpreter, framework import, model build, set-up (2-core
    # development VM, quiet: `import torch, torchvision` alone 4.8 s; the quick study's AlexNet
    # points took 7-7.5 s per process beyond warm-up and measurement). TensorFlow and JAX import
    # more; ONNX Runtime also exports the model from torch. The study's planner uses it.
    start_s: float = 7.0

    def allows(self, mode: str, precision: str, device: str | None = None) -> str | None:
        """None when this framework runs (mode, precision) on `device` (None: any device), else the
        one-line reason. The one place of the rules every caller applies (command line, study plan,
        tune)."""
        if mode not in self.modes:
            return f"framework {self.name!r} runs {' and '.join(self.modes)} only, not {mode}" + self.modes_note
        if precision not in self.precisions:
            return (f"precision {precision} is not supported with framework {self.name!r}: "
                    f"use {', '.join(self.precisions)}")
        if precision == "fp16" and mode == "training" and not self.fp16_training:
            return (f"fp16 training with framework {self.name!r} is not supported (it needs loss "
                    "scaling): use bf16, or fp16 for inference")
        if device is not None and device.partition(":")[0] not in self.devices:
            return f"framework {self.name!r} runs on {' or '.join(self.devices)}, not {device}"
        return None

    def run_name(self, compiled: bool) -> str:
        return self.run_names[bool(compiled) or self.always_compiled]


_KERAS_NHWC = "Keras models always run NHWC (channels_last), so the flag changes nothing"
SPECS = {s.name: s for s in (
    FrameworkSpec("torch", "nnscale.measure.backends.torch:TorchBackend", ("torch",), None,
                  ("inference", "decode", "training"), ("fp32", "tf32", "bf16", "fp16"), True,
                  "compile", ("eager", "torch.compile")),
    # fp16 training would need Keras' LossScaleOptimizer threaded through both stateless steps; not
    # done, so refused rather than run without loss scaling (which underflows gradients).
    FrameworkSpec("tensorflow", "nnscale.measure.backends.tensorflow:TensorFlowBackend",
                  ("tensorflow", "keras"), "tensorflow", ("inference", "training"),
                  ("fp32", "tf32", "bf16", "fp16"), False, "xla", ("tf.function", "tf.function+xla"),
                  keras_twin=True, channels_last_refused=_KERAS_NHWC, start_s=11.0),
    FrameworkSpec("jax", "nnscale.measure.backends.jax:JaxBackend", ("jax", "keras"), "jax",
                  ("inference", "training"), ("fp32", "tf32", "bf16", "fp16"), False, "jit",
                  ("jax.jit", "jax.jit"), keras_twin=True, always_compiled=True,
                  channels_last_refused=_KERAS_NHWC, start_s=10.0),
    FrameworkSpec("onnxruntime", "nnscale.measure.backends.onnxruntime:OnnxRuntimeBackend",
                  ("onnxruntime", "onnx", "torch"), "onnx", ("inference",), ("fp32",), False, "",
                  ("InferenceSession", "InferenceSession"),
                  compile_refused="the session always optimises the graph (ORT_ENABLE_ALL)",
                  channels_last_refused="the exported ONNX graph is NCHW",
                  modes_note=" (ONNX Runtime is an inference engine)", start_s=11.0),
)}
FRAMEWORKS = tuple(SPECS)


def framework_spec(framework: str) -> FrameworkSpec:
    spec = SPECS.get(framework)
    if spec is None:
        raise UserError(f"unknown framework {framework!r}: expected one of {', '.join(FRAMEWORKS)}")
    return spec


def check_installed(framework: str) -> None:
    """UserError naming the pip extra when a module `framework` needs cannot be found."""
    spec = framework_spec(framework)
    for module in spec.modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken parent package, or __spec__ None
            found = False
        if not found:
            hint = f"pip install 'nnscale[{spec.extra}]'" if spec.extra else f"pip install {module}"
            raise UserError(f"framework {framework!r} is not installed: {hint}")


def check_options(framework: str, modes: tuple[str, ...], precision: str, channels_last: bool,
                  compile: bool) -> bool:
    """UserError for a (framework, option) pair it cannot run; the `compile` flag to store.

    JAX runs only through `jax.jit`, so its points always say compile=True: what ran, not what was
    asked (an eager JAX step, op by op from Python, is not how anyone runs JAX).
    """
    spec = framework_spec(framework)
    for mode in modes:
        why = spec.allows(mode, precision)  # the device is checked apart (validate.check_device)
        if why:
            raise UserError(why)
    if channels_last and spec.channels_last_refused:
        raise UserError(f"--channels-last is torch's memory-format switch; not with {framework!r}: "
                        f"{spec.channels_last_refused}")
    if compile and spec.compile_refused:
        raise UserError(f"--compile has no meaning with {framework!r}: {spec.compile_refused}")
    return True if spec.always_compiled else bool(compile)


def check_framework(framework: str, modes: tuple[str, ...], precision: str, channels_last: bool,
                    compile: bool) -> bool:
    """`check_installed` and `check_options`; the compile flag to store."""
    framework_spec(framework)
    check_installed(framework)
    return check_options(framework, modes, precision, channels_last, compile)


def runs_model(framework: str, model: str) -> bool:
    """Whether `framework` has a definition of zoo `model`: a Keras-twin framework only for models
    registered with a twin (the zoo's `ModelInfo.keras_twin`); the others run every zoo model."""
    if not framework_spec(framework).keras_twin:
        return True
    from nnscale.zoo import model_info  # the zoo's registry, not keras: the parent never loads keras

    try:
        return model_info(model).keras_twin
    except UserError:
        return False


def keras_twins() -> tuple[str, ...]:
    """The zoo models that have a Keras twin, sorted."""
    from nnscale.zoo import list_models, model_info

    return tuple(sorted(n for n in list_models() if model_info(n).keras_twin))


def check_model(framework: str, model: str, input_shape: tuple[int, ...] | None,
                default_shape: tuple[int, ...]) -> None:
    """TensorFlow and JAX run the Keras twins of the zoo's models, at their own input shape only."""
    if not framework_spec(framework).keras_twin:
        return
    if not runs_model(framework, model):
        raise UserError(f"framework {framework!r} has no Keras definition of {model!r}: "
                        f"known: {', '.join(keras_twins())}")
    if input_shape is not None and tuple(input_shape) != tuple(default_shape):
        raise UserError(f"--input-size is not supported with framework {framework!r}: the Keras "
                        f"definition of {model} has a fixed input {tuple(default_shape)} (C, H, W)")


def parse_frameworks(text: str) -> tuple[str, ...]:
    """'torch,jax' -> ('torch', 'jax'); unknown names are a UserError listing the known ones."""
    names = tuple(dict.fromkeys(p.strip() for p in str(text).split(",") if p.strip()))
    if not names:
        raise UserError(f"empty --framework: expected one or more of {', '.join(FRAMEWORKS)}")
    for name in names:
        framework_spec(name)
    return names
