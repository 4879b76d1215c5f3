"""The model zoo: paper-original networks, torchvision and timm models, the seed's small nets."""

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]


def __getattr__(name: str):
    # The registry imports torch; loaded on first use (PEP 562) so that `nnscale.zoo.lm_shapes`,
    # plain data, stays importable by the torch-free layers (predict) without it.
    if name in __all__:
        from nnscale.zoo import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'nnscale.zoo' has no attribute {name!r}")
