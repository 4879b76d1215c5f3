"""The Keras model registry: one entry per zoo model that has a Keras 3 twin.

Each entry has the zoo's name, so `create_keras_model("resnet50")` and the zoo's
`create_model("resnet50")` are the same network; only the framework differs. The input shape is
channels-last, (H, W, C): the layout Keras defaults to and TensorFlow and JAX run fastest on CPU.

The definition modules register their models on first use (as the zoo does), so importing the
registry alone imports no framework at all.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nnscale.errors import UserError

# A builder takes the symbolic input tensor and the number of classes and returns the symbolic
# output tensor; the registry wraps the two in a keras.Model.
Builder = Callable[[Any, int], Any]


@dataclass(frozen=True, slots=True)
class KerasModelInfo:
    """What the registry knows about a Keras model besides how to build it."""

    name: str  # the same name as the zoo's torch model
    input_shape: tuple[int, int, int]  # (H, W, C) of one sample: the zoo's (C, H, W) transposed
    num_classes: int
    description: str = ""


@dataclass(frozen=True, slots=True)
class _Entry:
    info: KerasModelInfo
    build: Builder


_REGISTRY: dict[str, _Entry] = {}


def register_keras_model(
    name: str, *, input_shape: tuple[int, int, int], num_classes: int, description: str = ""
) -> Callable[[Builder], Builder]:
    """Decorator adding `build(inputs, num_classes) -> outputs` to the registry under `name`."""

    def decorate(build: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"Keras model {name!r} is registered twice")
        info = KerasModelInfo(name, tuple(input_shape), num_classes, description)
        _REGISTRY[name] = _Entry(info, build)
        return build

    return decorate


def _load_builtin() -> None:
    # Importing the definition modules registers their models; done lazily so that importing the
    # registry stays free of keras and of import cycles.
    from nnscale.kerasnets import alexnet, inception, resnet, small  # noqa: F401


def list_keras_models() -> list[str]:
    """The names of all Keras models, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def _entry(name: str) -> _Entry:
    _load_builtin()
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UserError(
        f"no Keras definition of model {name!r}: {hint}known: {', '.join(sorted(_REGISTRY))}"
    )


def keras_model_info(name: str) -> KerasModelInfo:
    """The registry's description of `name`; UserError listing the known names if there is none."""
    return _entry(name).info


def keras_input_shape(name: str) -> tuple[int, int, int]:
    """(H, W, C) of one sample of `name`: the transpose of the zoo's (C, H, W)."""
    return _entry(name).info.input_shape


def create_keras_model(name: str, num_classes: int | None = None):
    """Build `name` as a keras.Model with random weights and a fixed channels-last input shape.

    The input is (batch, H, W, C) with H, W, C from `keras_input_shape(name)`; the batch dimension
    is free. `num_classes` replaces the default number of outputs (the zoo's `num_classes=`).
    """
    entry = _entry(name)
    if num_classes is None:
        num_classes = entry.info.num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UserError(f"num_classes must be a positive integer, not {num_classes!r}")
    import keras

    inputs = keras.Input(shape=entry.info.input_shape, name="input")
    outputs = entry.build(inputs, num_classes)
    return keras.Model(inputs, outputs, name=name)
