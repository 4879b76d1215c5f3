"""Data-parallel scaling on the engine people run: torch.distributed DDP or FSDP2 (`fully_shard`,
`ScaleConfig(strategy="fsdp")`), launched by torchrun.

- `run_scale(ScaleConfig(...), Sink(store, run_id, run_name))`: one DDP point per world size,
  weak or strong scaling, with speedup/efficiency, the per-iteration breakdown (forward, backward,
  optimizer, communication exposed and overlapped), per-rank times and bytes all-reduced.
- `run_allreduce(AllreduceConfig(...))`: the all-reduce microbenchmark (nccl-tests' algbw/busbw).
- `slurm`: sbatch scripts that run `nnscale scale` on 1, 2, 4, … nodes.

Importing this package does not import torch; the modules that run workers do.
See docs/distributed.md.
"""

from nnscale.distributed.config import AllreduceConfig, Launching, ScaleConfig
from nnscale.distributed.launch import LaunchFailed
from nnscale.distributed.metrics import (algbw_gb_per_s, busbw_gb_per_s, scaling,
                                         time_to_train_min)


def run_scale(cfg, sink=None):
    from nnscale.distributed.scaling import Sink, run_scale as _run

    return _run(cfg, sink or Sink())


def run_allreduce(cfg, sink=None):
    from nnscale.distributed.allreduce import run_allreduce as _run
    from nnscale.distributed.launch_loop import Sink

    return _run(cfg, sink or Sink())


__all__ = ["AllreduceConfig", "Launching", "LaunchFailed", "ScaleConfig", "algbw_gb_per_s",
           "busbw_gb_per_s", "run_allreduce", "run_scale", "scaling", "time_to_train_min"]
