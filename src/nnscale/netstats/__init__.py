"""Network statistics: parameters, MACs, FLOPs, conv depth and per-layer tables of zoo models."""

from nnscale.netstats.counting import Counts, LayerCount, count
from nnscale.netstats.depth import conv_depth
from nnscale.netstats.summary import NetStats, network_stats, parse_input_size

__all__ = ["Counts", "LayerCount", "NetStats", "conv_depth", "count", "network_stats", "parse_input_size"]
