"""Depth in convolution layers: the longest chain of convolutions through the traced graph.

Counting conv modules is not depth: Inception v1 has 57 convolutions but any input-to-output path
crosses at most 21 of them (3 in the stem + 2 per inception module x 9), and ResNet-50 has 53
convolutions of which the 4 projection shortcuts run beside the main path, so its depth is 49.
The graph comes from torch.fx symbolic tracing, which records every call_module/call_function node
with its inputs; a longest-path pass over that DAG in topological order gives the depth.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

_CONV_FUNCTIONS = {F.conv1d, F.conv2d, F.conv3d, torch.conv1d, torch.conv2d, torch.conv3d}


def _is_conv(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(str(node.target)), nn.modules.conv._ConvNd)
    return node.op == "call_function" and node.target in _CONV_FUNCTIONS


def conv_depth(model: nn.Module) -> int | None:
    """Longest path counted in convolutions, or None if the model cannot be traced symbolically."""
    try:
        graph_module = fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - data-dependent control flow; depth is then unknown, not wrong
        return None
    modules = dict(graph_module.named_modules())
    depth: dict[fx.Node, int] = {}
    for node in graph_module.graph.nodes:  # fx keeps nodes in topological order
        before = max((depth[n] for n in node.all_input_nodes), default=0)
        depth[node] = before + (1 if _is_conv(node, modules) else 0)
    return max(depth.values(), default=0)
