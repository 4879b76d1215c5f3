"""nnscale: how a neural network's speed scales with batch size, precision, GPUs and nodes."""

__version__ = "0.1.0"
