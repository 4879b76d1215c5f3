"""Parameters, MACs, FLOPs and activation memory of a model, counted by PyTorch itself.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode`, which intercepts the aten operators
(convolution, mm, addmm, bmm, attention, and their backward) and attributes them to modules. Inputs
live on the meta device, so nothing is computed: a ResNet-152 is counted in a fraction of a second.

Conventions (written down because the published tables disagree on them):
- MACs: multiply-accumulates of every matrix operation FlopCounterMode counts in one image's forward
  pass: convolutions, linear layers (mm, addmm), batched matmuls (bmm, baddbmm: attention's
  Q @ K^T and A @ V, einsum through its decomposition) and scaled_dot_product_attention. Every one
  of them is a multiply-accumulate kernel counted as 2 FLOPs per MAC, so MACs = forward FLOPs / 2.
  This is what torchvision's published "GFLOPS" (really GMACs, its weights' meta `_ops`) count:
  vit_b_16 17.564 G, swin_t 4.491 G.
- conv+linear MACs: the same for aten.convolution, aten.mm and aten.addmm only, the convention of
  the seed's table (Sze et al.) and of counters that hook nn.Conv2d/nn.Linear: without attention's
  activation-by-activation matmuls (vit_b_16 16.849 G). Equal to MACs for a CNN.
- forward FLOPs: everything FlopCounterMode counts in a forward pass (matrix ops, convolutions,
  attention); elementwise operations, pooling and normalisation are not counted by it.
- training FLOPs: forward + backward of one image, counted the same way (the backward is about twice
  the forward; less where the first layer needs no input gradient).
- weights (Sze et al., "Efficient processing of deep neural networks", Proc. IEEE 2017, Table III):
  conv and linear weight tensors only, no biases, no normalisation parameters.
- activation memory: bytes autograd saves for the backward pass of one fp32 image in training mode
  (captured with saved_tensors_hooks, each storage once, parameters excluded) — the per-image memory
  that grows with batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

_aten = torch.ops.aten
_CONV_LINEAR_OPS = (_aten.convolution, _aten.mm, _aten.addmm)
_LAYER_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


@dataclass(frozen=True, slots=True)
class LayerCount:
    name: str  # qualified module name
    type: str  # module class
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int  # the module's own parameters (not its children's)
    macs: int  # per image


@dataclass(frozen=True, slots=True)
class Counts:
    params_total: int
    params_trainable: int
    params_weights: int
    macs: int
    macs_conv_linear: int
    forward_flops: int
    training_flops: int
    conv_layers: int
    fc_layers: int
    activation_bytes: int
    layers: tuple[LayerCount, ...]


def _first_tensor(out) -> torch.Tensor:
    # Models with auxiliary heads return tuples in training; the main output comes first.
    while isinstance(out, (tuple, list)):
        out = out[0]
    if hasattr(out, "logits"):  # torchvision's GoogLeNetOutputs / InceptionOutputs
        out = out.logits
    return out


def _macs_of(op_counts: dict) -> int:
    """Every op FlopCounterMode counts is a matrix multiply-accumulate at 2 FLOPs per MAC."""
    return sum(op_counts.values()) // 2


def _conv_linear_macs_of(op_counts: dict) -> int:
    return sum(op_counts.get(op, 0) for op in _CONV_LINEAR_OPS) // 2


def count_forward(model: nn.Module, x: torch.Tensor) -> tuple[dict, list[LayerCount], int]:
    """One eval-mode forward pass: per-module FLOP counts, the leaf-layer rows, the layers' calls."""
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []
    names = {m: n for n, m in model.named_modules()}

    def record(module, _inputs, output):
        name = names.get(module)
        out = _first_tensor(output) if not isinstance(output, torch.Tensor) else output
        if name is not None and name not in shapes and isinstance(out, torch.Tensor):
            shapes[name] = tuple(out.shape[1:])
            order.append(name)

    # Hooks only record output shapes for the per-layer table; counting is FlopCounterMode's.
    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(record) for m in leaves]
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
    per_module = counter.get_flop_counts()
    root = type(model).__name__
    modules = dict(model.named_modules())
    rows = []
    for name in order:
        module = modules[name]
        ops = per_module.get(f"{root}.{name}", {})
        own_params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append(LayerCount(name, type(module).__name__, shapes[name], own_params, _macs_of(ops)))
    # Convolutions or matmuls called functionally inside a non-leaf module (attention blocks, say)
    # belong to no leaf: give them a row of their own so the shares add up to the total.
    attributed = sum(r.macs for r in rows)
    total = _macs_of(per_module.get("Global", {}))
    if total > attributed:
        rows.append(LayerCount("(functional ops)", "-", (), 0, total - attributed))
    return per_module.get("Global", {}), rows, len(order)


def saved_tensor_hooks(model: nn.Module) -> tuple[torch.autograd.graph.saved_tensors_hooks, dict[int, int]]:
    """(a context recording what autograd saves for backward, {storage: bytes} it fills): every
    storage once, the model's own parameters left out (they are weights, not activations)."""
    params = {p.untyped_storage()._cdata for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in params:
            saved[storage._cdata] = storage.nbytes()
        return t

    return torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), saved


def count_training(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """One training-mode forward + backward: (FLOPs, activation bytes saved for backward)."""
    hooks, saved = saved_tensor_hooks(model)

    # Two images, not one: batch norm refuses a batch of one value per channel in training mode
    # (inception_v3's aux head at 1x1, say). Counts are halved back to one image.
    batch = 2
    x = x.expand(batch, *x.shape[1:]).contiguous()
    was_training = model.training
    model.train()
    counter = FlopCounterMode(display=False)
    try:
        with counter, hooks:
            out = _first_tensor(model(x.requires_grad_(False)))
            out.float().sum().backward()
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    flops = sum(counter.get_flop_counts().get("Global", {}).values())
    return flops // batch, sum(saved.values()) // batch


def count(model: nn.Module, x: torch.Tensor) -> Counts:
    """Count `model` on one input `x` of batch 1, ideally on the meta device (counts are per image)."""
    if x.shape[0] != 1:
        raise ValueError("count() takes a batch of one image; counts are per image")
    forward_ops, rows, _ = count_forward(model, x)
    training_flops, activation_bytes = count_training(model, x)
    weights = sum(
        m.weight.numel() for m in model.modules() if isinstance(m, _LAYER_TYPES) and m.weight is not None
    )
    called = {r.name for r in rows}
    modules = dict(model.named_modules())
    conv = sum(1 for n in called if isinstance(modules.get(n), nn.modules.conv._ConvNd))
    fc = sum(1 for n in called if isinstance(modules.get(n), nn.Linear))
    return Counts(
        params_total=sum(p.numel() for p in model.parameters()),
        params_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        params_weights=weights,
        macs=_macs_of(forward_ops),
        macs_conv_linear=_conv_linear_macs_of(forward_ops),
        forward_flops=sum(forward_ops.values()),
        training_flops=training_flops,
        conv_layers=conv,
        fc_layers=fc,
        activation_bytes=activation_bytes,
        layers=tuple(rows),
    )
