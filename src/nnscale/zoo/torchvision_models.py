"""torchvision classification models: the study's named variants and any `torchvision:NAME`.

torchvision is imported when a model is built or a `torchvision:NAME` is looked up, not when the
named variants are registered: every nnscale command, sweep worker and torchrun rank looks models
up, most of them not torchvision's, and `import torchvision` costs ~3 s on the 2-core development
VM (it pulls in torch._dynamo).
"""

from __future__ import annotations

from torch import nn

from nnscale.errors import UserError
from nnscale.zoo.registry import ModelInfo, register_model

_SOURCE = "torchvision.models.{}"

# The named variants the seed's study uses, with the paper of each architecture.
_PAPERS = {
    "alexnet": "Krizhevsky, 'One weird trick for parallelizing convolutional neural networks', "
    "arXiv:1404.5997, 2014 (torchvision's AlexNet follows this single-tower variant)",
    "googlenet": "Szegedy et al., 'Going deeper with convolutions', CVPR 2015 "
    "(torchvision adds batch norm and uses 3x3 where the paper has 5x5)",
    "resnet50": "He et al., 'Deep residual learning for image recognition', CVPR 2016 "
    "(torchvision's v1.5: stride on the 3x3 convolution)",
    "resnet101": "He et al., 'Deep residual learning for image recognition', CVPR 2016 (v1.5)",
    "resnet152": "He et al., 'Deep residual learning for image recognition', CVPR 2016 (v1.5)",
    "vgg16": "Simonyan and Zisserman, 'Very deep convolutional networks for large-scale image "
    "recognition', ICLR 2015",
}
# Those of them nnscale.kerasnets also defines in Keras 3 (TensorFlow and JAX run these).
_KERAS_TWINS = frozenset({"alexnet", "googlenet", "resnet50", "resnet152"})


def _build_googlenet(aux_logits: bool = False, **kw) -> nn.Module:
    # Aux heads are off by default: they only run in training and the study's tables leave them out.
    # init_weights=True silences torchvision's warning about a changing default; transform_input=False
    # because the random-weight model has no ImageNet normalisation to undo.
    import torchvision

    kw.setdefault("init_weights", True)
    kw.setdefault("transform_input", False)
    return torchvision.models.googlenet(weights=None, aux_logits=aux_logits, **kw)


def _named_builder(name: str):
    def build(**kw) -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None, **kw)

    return build


def _register_named() -> None:
    for name, paper in _PAPERS.items():
        build = _build_googlenet if name == "googlenet" else _named_builder(name)
        register_model(
            name, family="torchvision", source=_SOURCE.format(name), paper=paper,
            keras_twin=name in _KERAS_TWINS,
        )(build)


_register_named()


def _classification_names() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def dynamic_info(name: str) -> ModelInfo:
    """Info for `torchvision:NAME`; the input size is the crop size of the model's default weights."""
    if name not in _classification_names():
        import difflib

        close = difflib.get_close_matches(name, _classification_names(), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join('torchvision:' + c for c in close)}?)" if close else ""
        raise UserError(
            f"torchvision has no classification model {name!r}{hint}; "
            "see torchvision.models.list_models(module=torchvision.models)"
        )
    import torchvision

    size = 224
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        size = int(weights.transforms.keywords.get("crop_size", size))
        num_classes = len(weights.meta.get("categories") or range(1000))
    except (ValueError, AttributeError, TypeError):  # models without published weights
        num_classes = 1000
    return ModelInfo(
        name=f"torchvision:{name}",
        family="torchvision",
        input_shape=(3, size, size),
        num_classes=num_classes,
        source=_SOURCE.format(name),
        paper="",
    )


def dynamic_builder(name: str):
    if name == "googlenet":
        return _build_googlenet

    def build(**kw) -> nn.Module:
        if name == "inception_v3":  # as for googlenet: silence the changing-default warning
            kw.setdefault("init_weights", True)
        if name.startswith("vit_"):
            # A ViT's position embedding fixes its input size. With weights, torchvision sets
            # image_size from them (vision_transformer.py, _vision_transformer); without, it is 224,
            # which does not fit vit_h_14's 518 (its default weights, the SWAG ones). Build the
            # model the default weights describe, at the size `dynamic_info` reports.
            kw.setdefault("image_size", dynamic_info(name).input_shape[1])
        import torchvision

        return torchvision.models.get_model(name, weights=None, **kw)

    return build
