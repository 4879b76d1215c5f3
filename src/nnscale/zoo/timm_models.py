"""`timm:NAME` — any timm model, when the optional extra `nnscale[timm]` is installed."""

from __future__ import annotations

from nnscale.errors import UserError
from nnscale.zoo.registry import ModelInfo


def _timm():
    try:
        import timm
    except ImportError:
        raise UserError(
            "timm models need the optional extra: pip install 'nnscale[timm]'"
        ) from None
    return timm


def dynamic_info(name: str) -> ModelInfo:
    timm = _timm()
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:4]}*")[:3]
        hint = f" (close: {', '.join('timm:' + c for c in close)})" if close else ""
        raise UserError(f"timm has no model {name!r}{hint}; see timm.list_models()")
    cfg = timm.get_pretrained_cfg(name)
    input_size = tuple(cfg.input_size) if cfg is not None else (3, 224, 224)
    num_classes = cfg.num_classes if cfg is not None and cfg.num_classes else 1000
    return ModelInfo(
        name=f"timm:{name}",
        family="timm",
        input_shape=input_size,
        num_classes=num_classes,
        source=f"timm.create_model({name!r})",
        paper=(cfg.paper_ids if cfg is not None and cfg.paper_ids else "") or "",
    )


def dynamic_builder(name: str):
    timm = _timm()

    def build(**kw):
        return timm.create_model(name, pretrained=False, **kw)

    return build
