"""Which frameworks nnscale measures, and what each of them can run — checked before any worker starts.

Torch-free and framework-free: everything here uses `importlib.util.find_spec`, which finds a package
without importing it, so the parent of a sweep never loads TensorFlow, JAX or ONNX Runtime. Every
problem is a one-line `UserError` (exit code 2 on the command line).

What `Workload` fields mean per framework (docs/methodology.md, "Frameworks"):

| framework | compile | channels_last | precisions | modes |
|---|---|---|---|---|
| torch | `torch.compile` | NCHW -> NHWC memory format | fp32 tf32 bf16 fp16 | both |
| tensorflow | XLA: `tf.function(jit_compile=True)`; off: a plain `tf.function` graph | refused: Keras is always NHWC | fp32 tf32 bf16; fp16 inference | both |
| jax | always `jax.jit` (normalised to on) | refused: Keras is always NHWC | fp32 tf32 bf16; fp16 inference | both |
| onnxruntime | refused: the session always optimises the graph | refused | fp32 | inference |
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from nnscale.errors import UserError

FRAMEWORKS = ("torch", "tensorflow", "jax", "onnxruntime")


@dataclass(frozen=True, slots=True)
class FrameworkSpec:
    modules: tuple[str, ...]  # what must be importable
    extra: str | None  # the pip extra that installs them
    modes: tuple[str, ...]
    precisions: tuple[str, ...]
    fp16_training: bool
    compile_word: str  # what `compile` means, for labels
    always_compiled: bool = False
    compile_allowed: bool = True
    channels_last_allowed: bool = False


SPECS = {
    "torch": FrameworkSpec(("torch",), None, ("inference", "decode", "training"), ("fp32", "tf32", "bf16", "fp16"),
                           True, "compile", channels_last_allowed=True),
    # fp16 training would need Keras' LossScaleOptimizer threaded through both stateless steps; not
    # done, so refused rather than run without loss scaling (which underflows gradients).
    "tensorflow": FrameworkSpec(("tensorflow", "keras"), "tensorflow", ("inference", "training"),
                                ("fp32", "tf32", "bf16", "fp16"), False, "xla"),
    "jax": FrameworkSpec(("jax", "keras"), "jax", ("inference", "training"),
                         ("fp32", "tf32", "bf16", "fp16"), False, "jit", always_compiled=True),
    "onnxruntime": FrameworkSpec(("onnxruntime", "onnx", "torch"), "onnx", ("inference",), ("fp32",),
                                 False, "", compile_allowed=False),
}


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
        if mode not in spec.modes:
            raise UserError(f"framework {framework!r} runs {' and '.join(spec.modes)} only, not {mode}"
                            + (" (ONNX Runtime is an inference engine)" if framework == "onnxruntime" else ""))
    if precision not in spec.precisions:
        raise UserError(f"precision {precision} is not supported with framework {framework!r}: "
                        f"use {', '.join(spec.precisions)}")
    if precision == "fp16" and "training" in modes and not spec.fp16_training:
        raise UserError(f"fp16 training with framework {framework!r} is not supported (it needs loss "
                        "scaling): use bf16, or fp16 for inference")
    if channels_last and not spec.channels_last_allowed:
        why = ("Keras models always run NHWC (channels_last), so the flag changes nothing"
               if framework in ("tensorflow", "jax") else "the exported ONNX graph is NCHW")
        raise UserError(f"--channels-last is torch's memory-format switch; not with {framework!r}: {why}")
    if compile and not spec.compile_allowed:
        raise UserError(f"--compile has no meaning with {framework!r}: the session always optimises "
                        "the graph (ORT_ENABLE_ALL)")
    return True if spec.always_compiled else bool(compile)


def check_framework(framework: str, modes: tuple[str, ...], precision: str, channels_last: bool,
                    compile: bool) -> bool:
    """`check_installed` and `check_options`; the compile flag to store."""
    framework_spec(framework)
    check_installed(framework)
    return check_options(framework, modes, precision, channels_last, compile)


@cache
def keras_model_names() -> frozenset[str]:
    """The models `nnscale.kerasnets` defines, read from its `register_keras_model("name", ...)`
    calls without importing it (its definitions import keras, which the parent must not load:
    keras picks its backend once per process). Empty when the package cannot be read."""
    spec = importlib.util.find_spec("nnscale.kerasnets")
    names: set[str] = set()
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for path in Path(folder).glob("*.py"):
            try:
                tree = ast.parse(path.read_text())
            except (OSError, SyntaxError):
                continue
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register_keras_model"
                        and node.args and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)):
                    names.add(node.args[0].value)
    return frozenset(names)


def check_model(framework: str, model: str, input_shape: tuple[int, ...] | None,
                default_shape: tuple[int, ...]) -> None:
    """TensorFlow and JAX run the Keras twins of the zoo's models, at their own input shape only."""
    if framework not in ("tensorflow", "jax"):
        return
    known = keras_model_names()
    if known and model not in known:
        raise UserError(f"framework {framework!r} has no Keras definition of {model!r}: "
                        f"known: {', '.join(sorted(known))}")
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
