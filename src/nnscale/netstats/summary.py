"""Network statistics of a zoo model at a given input size: the seed's table, and more."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from nnscale.errors import UserError
from nnscale.netstats.counting import Counts, LayerCount
from nnscale.netstats.fallback import build_on_meta, count_anywhere
from nnscale.netstats.depth import conv_depth
from nnscale.zoo import create_model, model_info

_SIZE = re.compile(r"^\d+(x\d+){0,2}$")


def parse_input_size(text: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """'3x224x224' -> (3, 224, 224); '224x224' and '224' keep the default channel count."""
    raw = text.strip().lower()
    if not _SIZE.match(raw):
        raise UserError(
            f"malformed --input-size {text!r}: expected CxHxW, HxW or S with positive integers, "
            "e.g. 3x224x224"
        )
    dims = tuple(int(v) for v in raw.split("x"))
    if any(d <= 0 for d in dims):
        raise UserError(f"malformed --input-size {text!r}: every dimension must be positive")
    channels = default[0]
    if len(dims) == 1:
        return (channels, dims[0], dims[0])
    if len(dims) == 2:
        return (channels, *dims)
    return dims


@dataclass(frozen=True, slots=True)
class NetStats:
    model: str
    input_shape: tuple[int, ...]
    params_total: int
    params_trainable: int
    params_weights: int
    macs: int  # every matmul: conv, linear, attention (bmm, scaled-dot-product)
    macs_conv_linear: int  # conv and linear layers only (the seed's table's convention)
    forward_flops: int
    training_flops: int
    conv_layers: int
    conv_depth: int | None  # None when the model cannot be traced symbolically
    fc_layers: int
    activation_bytes: int
    layers: tuple[LayerCount, ...]
    notes: tuple[str, ...] = ()  # how it was counted where the meta device alone was not enough

    def to_dict(self, per_layer: bool = False) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["notes"] = list(self.notes)
        if per_layer:
            total = self.macs or 1
            d["layers"] = [dict(asdict(r), output_shape=list(r.output_shape), macs_share=r.macs / total)
                           for r in self.layers]
        else:
            d.pop("layers")
        return d


def network_stats(name: str, input_shape: tuple[int, ...] | None = None, **overrides) -> NetStats:
    """Count `name` at `input_shape` (C, H, W; the model's default when None) without real compute.

    Everything runs on the meta device: shapes propagate, FLOPs are counted, no memory is filled.
    Where a model needs real tensor values (to be built, or in its forward pass) that part runs on
    the CPU instead, and `notes` says so (netstats.fallback).
    """
    info = model_info(name)
    shape = tuple(input_shape) if input_shape is not None else info.input_shape
    if info.family == "imported" and input_shape is not None:
        # A Caffe/MatConvNet definition is rebuilt for the new input, as Caffe reshapes a net.
        overrides = dict(overrides, input_shape=shape)
    model, built_note = build_on_meta(lambda: create_model(name, **overrides))
    try:
        counts: Counts
        counts, counted_note = count_anywhere(model, shape)
    except (RuntimeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        size = "x".join(map(str, shape))
        default = "x".join(map(str, info.input_shape))
        raise UserError(
            f"input {size} does not fit {name} (its default is {default}): {first}"
        ) from None
    return NetStats(
        model=name,
        input_shape=shape,
        params_total=counts.params_total,
        params_trainable=counts.params_trainable,
        params_weights=counts.params_weights,
        macs=counts.macs,
        macs_conv_linear=counts.macs_conv_linear,
        forward_flops=counts.forward_flops,
        training_flops=counts.training_flops,
        conv_layers=counts.conv_layers,
        conv_depth=conv_depth(model),
        fc_layers=counts.fc_layers,
        activation_bytes=counts.activation_bytes,
        layers=counts.layers,
        notes=tuple(n for n in (built_note, counted_note) if n),
    )
