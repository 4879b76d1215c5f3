"""The model registry, in the manner of timm's: `register_model`, `create_model`, `list_models`.

Every entry knows its default input shape, number of classes, where its definition comes from and the
paper it follows, so statistics and measurements are self-describing. Weights are always randomly
initialised: speed does not depend on their values and nothing may be downloaded at run time.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from nnscale.errors import UserError
from nnscale.zoo.lm_shapes import LMShape

# Families, in the order listings show them. "lm": decoder-only language models (transformer_models).
FAMILIES = ("paper", "torchvision", "seed", "test", "timm", "imported", "lm")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the registry knows about a model besides how to build it."""

    name: str
    family: str
    input_shape: tuple[int, ...]  # (C, H, W) of one sample, without the batch dimension
    num_classes: int
    source: str  # where the definition comes from (a library function or "written from the paper")
    paper: str  # citation of the architecture's paper; "" where there is none
    description: str = ""
    # A language model's shape (vocabulary, layers, maximum sequence length...); None for the rest.
    # Its input is token ids (batch, S): input_shape is then (S,), the default sequence length.
    lm_shape: LMShape | None = None
    # A Keras 3 twin of the same network is registered in nnscale.kerasnets under this name, so
    # TensorFlow and JAX can run it (tests/kerasnets check the two registries agree).
    keras_twin: bool = False

    @property
    def is_lm(self) -> bool:
        return self.lm_shape is not None


@dataclass(frozen=True, slots=True)
class _Entry:
    info: ModelInfo
    build: Callable[..., nn.Module]


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str,
    *,
    family: str,
    input_shape: tuple[int, ...] = (3, 224, 224),
    num_classes: int = 1000,
    source: str,
    paper: str = "",
    description: str = "",
    lm_shape: LMShape | None = None,
    keras_twin: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a model constructor `fn(**overrides) -> nn.Module` to the registry."""
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} is not one of {FAMILIES}")

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        info = ModelInfo(name, family, tuple(input_shape), num_classes, source, paper, description,
                         lm_shape, keras_twin)
        _REGISTRY[name] = _Entry(info, fn)
        return fn

    return decorate


def _load_builtin() -> None:
    # Importing the definition modules registers their models; done lazily so that importing the
    # registry alone stays cheap and free of import cycles.
    from nnscale.zoo import (  # noqa: F401
        paper_models,
        seed_models,
        test_models,
        torchvision_models,
        transformer_models,
    )


def list_models(pattern: str = "*", *, family: str | None = None) -> list[str]:
    """Registered names matching a shell-style pattern (case-insensitive), sorted by family then name."""
    _load_builtin()
    pat = pattern.lower()
    names = [
        n
        for n, e in _REGISTRY.items()
        if fnmatch.fnmatchcase(n.lower(), pat) and (family is None or e.info.family == family)
    ]
    return sorted(names, key=lambda n: (FAMILIES.index(_REGISTRY[n].info.family), n))


def _unknown(name: str) -> UserError:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return UserError(
        f"unknown model {name!r}: {hint}see `nnscale models` for the zoo, "
        "or use torchvision:NAME / timm:NAME"
    )


def _importer(name: str):
    """The importer module for a Caffe `.prototxt` or MatConvNet `.mat` path, else None."""
    if name.lower().endswith(".prototxt"):
        from nnscale.zoo import caffe_import

        return caffe_import
    if name.lower().endswith(".mat"):
        from nnscale.zoo import matconvnet_import

        return matconvnet_import
    return None


def model_info(name: str) -> ModelInfo:
    """The registry's description of `name` (also `torchvision:NAME`, `timm:NAME` and the paths of
    Caffe `.prototxt` and MatConvNet `.mat` network definitions)."""
    _load_builtin()
    if name in _REGISTRY:
        return _REGISTRY[name].info
    if (importer := _importer(name)) is not None:
        return importer.info(name)
    prefix, sep, rest = name.partition(":")
    if sep and prefix == "torchvision":
        from nnscale.zoo import torchvision_models

        return torchvision_models.dynamic_info(rest)
    if sep and prefix == "timm":
        from nnscale.zoo import timm_models

        return timm_models.dynamic_info(rest)
    raise _unknown(name)


def create_model(name: str, **overrides) -> nn.Module:
    """Build `name` with random weights; `overrides` go to the constructor (e.g. num_classes=10).

    Build under `torch.device("meta")` to count without allocating memory.
    """
    info = model_info(name)
    if name in _REGISTRY:
        build = _REGISTRY[name].build
    elif info.family == "imported":
        build = _importer(name).builder(name)
    elif info.family == "torchvision":
        from nnscale.zoo import torchvision_models

        build = torchvision_models.dynamic_builder(name.partition(":")[2])
    else:
        from nnscale.zoo import timm_models

        build = timm_models.dynamic_builder(name.partition(":")[2])
    try:
        model = build(**overrides)
    except TypeError as exc:  # an override the constructor does not take
        raise UserError(f"model {name!r} does not accept {sorted(overrides)}: {exc}") from None
    return model.eval()
