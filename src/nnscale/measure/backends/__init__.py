"""One module per framework, each a `Backend` (base.py) that only builds its model and its step.

Importing this package imports no framework: `get_backend` loads the module its `FrameworkSpec`
names (measure/frameworks.py), in the worker that measures the point.
"""

from nnscale.measure.backends.base import Backend, Prepared, get_backend, looks_like_oom

__all__ = ["Backend", "Prepared", "get_backend", "looks_like_oom"]
