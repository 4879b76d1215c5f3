"""The zoo's networks defined once in Keras 3, so TensorFlow and JAX run the same architectures.

A speed difference between frameworks should be the framework's, not the architecture's: every
model here has the zoo's name and exactly the zoo's torch model's trainable parameters, batch norm
statistics and output shape, layer for layer (tests/kerasnets check this against the zoo).

Only `keras`, `keras.layers` and `keras.ops` are used, never a backend directly, and the package
neither imports torch nor sets KERAS_BACKEND: the process that imports it picks the backend
(KERAS_BACKEND must be set before keras is first imported). Inputs are channels-last, (batch, H, W,
C), Keras's default and the layout TensorFlow and JAX run fastest on CPU. A Flatten before a dense
layer therefore orders its features (H, W, C) where torch's order is (C, H, W); the sizes and the
work are the same.
"""

from nnscale.kerasnets.registry import (
    KerasModelInfo,
    create_keras_model,
    keras_input_shape,
    keras_model_info,
    list_keras_models,
)

__all__ = [
    "KerasModelInfo",
    "create_keras_model",
    "keras_input_shape",
    "keras_model_info",
    "list_keras_models",
]
