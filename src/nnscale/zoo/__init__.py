"""The model zoo: paper-original networks, torchvision and timm models, the seed's small nets."""

from nnscale.zoo.registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]
