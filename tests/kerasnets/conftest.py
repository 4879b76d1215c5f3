"""The Keras tests pick one backend per test process, before anything imports keras.

Keras reads KERAS_BACKEND once, at its first import. A backend already chosen in the environment
is kept; otherwise TensorFlow, whose eager ops start at once, where JAX compiles every new op shape
on its first eager call (a googlenet forward pass: 0.5 s under TensorFlow, 20 s under JAX on one
CPU core). The other backend is exercised in a subprocess (test_kerasnets_backends.py).
"""

from __future__ import annotations

import importlib.util
import os

if "KERAS_BACKEND" not in os.environ:
    for _backend in ("tensorflow", "jax"):
        if importlib.util.find_spec(_backend) is not None:
            os.environ["KERAS_BACKEND"] = _backend
            break
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up notices quiet

# torchvision must be imported before TensorFlow: the other order ends the process with a
# segmentation fault (torch 2.14 / torchvision / tensorflow-cpu 2.21 on Linux, both loading their
# own native libraries). The zoo imports torchvision, so load it now, before any test imports keras.
import torchvision.models  # noqa: F401
