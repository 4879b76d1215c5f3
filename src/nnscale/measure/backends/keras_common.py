"""What the TensorFlow and JAX backends share: Keras 3 set-up, the model, the inputs and the loss.

The networks are defined once in Keras 3 (`nnscale.kerasnets`) and run on the Keras backend the
worker picks. Keras reads its backend from the environment variable KERAS_BACKEND when it is first
imported ("Multi-backend Keras", https://keras.io/getting_started/#configuring-your-backend), so
`import_keras(name)` sets it before the first `import keras` of the worker process — which is a
fresh process per point, so nothing has imported keras before — and refuses to go on when keras
was already imported with another backend (in-process use from a test or a benchmark).

Precision uses Keras mixed-precision policies (https://keras.io/api/mixed_precision/policy/):
fp32 and tf32 -> "float32"; bf16 -> "mixed_bfloat16"; fp16 -> "mixed_float16": the layers compute
in the low precision with fp32 variables, like torch.autocast. The policy is global and must be set
before the model is built.
"""

from __future__ import annotations

import importlib
import os
import sys

from nnscale.errors import UserError
from nnscale.measure.backends.base import Backend
from nnscale.records import Workload

POLICIES = {"fp32": "float32", "tf32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
# Quiet TensorFlow's C++ start-up logging (INFO and WARNING): the worker's last stderr line is the
# message of a failed point, and must be the error, not a oneDNN banner.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def import_keras(backend: str):
    """`keras`, running on `backend` ("tensorflow" or "jax"); set KERAS_BACKEND first (module doc)."""
    loaded = sys.modules.get("keras")
    if loaded is None:
        os.environ["KERAS_BACKEND"] = backend
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)
    keras = importlib.import_module("keras")
    if keras.backend.backend() != backend:
        raise RuntimeError(f"keras is already loaded with the {keras.backend.backend()} backend in this "
                           f"process; the {backend} backend needs a fresh process (a worker)")
    return keras


def keras_version() -> str:
    import keras

    return keras.__version__


def build_model(keras, workload: Workload, seed: int):
    """The Keras twin of the zoo model, random weights from `seed`, under the precision's policy.

    The Keras definitions have a fixed (H, W, C) input: the zoo's (C, H, W) transposed. A workload
    with another input shape (`--input-size`) is refused (sweep checks this before any worker).
    """
    from nnscale.kerasnets import create_keras_model, keras_input_shape

    expected = tuple(keras_input_shape(workload.model))
    hwc = hwc_shape(workload.input_shape)
    if hwc != expected:
        raise UserError(f"{workload.model} in Keras takes (H, W, C) = {expected}, not {hwc}: "
                        "--input-size is not supported with tensorflow or jax")
    keras.utils.set_random_seed(seed)  # Python, NumPy and the backend's generator
    keras.mixed_precision.set_global_policy(POLICIES[workload.precision])
    return create_keras_model(workload.model)


def hwc_shape(chw: tuple[int, ...]) -> tuple[int, ...]:
    """(C, H, W) -> (H, W, C); other ranks unchanged."""
    if len(chw) == 3:
        c, h, w = chw
        return (h, w, c)
    return tuple(chw)


def num_classes(model) -> int | None:
    """Classes of the model's output (N, classes); None when the output is not class scores."""
    shape = model.outputs[0].shape
    return int(shape[-1]) if len(shape) == 2 else None


def training_loss(keras, out, y):
    """As the torch backend's `training_loss`: mean cross-entropy on the class scores (logits) when
    the output is (N, classes), else the mean square of the output (the seed's single Caffe
    convolution); computed in fp32 whatever the policy."""
    ops = keras.ops
    out = ops.cast(out, "float32")
    if len(out.shape) == 2:
        return ops.mean(keras.losses.sparse_categorical_crossentropy(y, out, from_logits=True))
    return ops.mean(ops.square(out))


def make_optimizer(keras):
    """The optimizer of every backend (`Backend.SGD_LR`, `Backend.SGD_MOMENTUM`)."""
    return keras.optimizers.SGD(learning_rate=Backend.SGD_LR, momentum=Backend.SGD_MOMENTUM)


class KerasBackend(Backend):
    """What the TensorFlow and JAX backends share: the Keras twin as the model, kept in `model` (for
    in-process checks: tests, benchmarks) and dropped by `close`; NHWC data whatever the workload
    asks (channels_last is refused at the edge); the Keras version and policy recorded."""

    held = ("model",)

    def __init__(self) -> None:
        super().__init__()
        self.model = None

    def data_layout(self, workload: Workload) -> str:
        return "NHWC"

    @staticmethod
    def load_definitions(workload: Workload) -> None:
        """Import the Keras definitions (and keras' layers) now: before the memory probe starts."""
        from nnscale.kerasnets import keras_model_info

        keras_model_info(workload.model)

    @staticmethod
    def keras_info(keras) -> dict:
        return {"keras_version": keras.__version__,
                "keras_policy": keras.mixed_precision.global_policy().name}

