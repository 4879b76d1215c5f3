"""What a study needs, checked before anything is measured: its device exists, its nets (the
scaling net included) are known, and at least one of its world sizes fits this machine.

Without these checks a study found the problem only at the scaling step, after every sweep, and
every resume died the same way: `run --device cuda:1` on a one-GPU machine, an unknown
`scale_net`, or `world_sizes` all larger than the usable cores (the scaling step's world sizes
were then empty and it ended in `max(())`, with no report).
"""

from __future__ import annotations

from dataclasses import dataclass

from nnscale.distributed.config import cuda_devices, usable_cpus
from nnscale.errors import UserError
from nnscale.measure.validate import check_device
from nnscale.study.config import StudyConfig
from nnscale.zoo import model_info


@dataclass(frozen=True, slots=True)
class ScalingPlan:
    """The scaling step's launcher device ("cpu" or "cuda": DDP places one rank per GPU) and the
    study's world sizes that fit this machine; notes say which were left out."""

    device: str
    world_sizes: tuple[int, ...]
    notes: tuple[str, ...] = ()


def _slots(device: str) -> tuple[int, str]:
    """How many workers fit here, and what limits them (for messages)."""
    if device == "cuda":
        gpus = cuda_devices()
        return gpus, f"{gpus} CUDA GPU(s) visible"
    cores = len(usable_cpus())
    # Two workers on one core still run (oversubscribed, with a warning): as many as before.
    return max(cores, 2), f"{cores} usable core(s) (os.sched_getaffinity)"


def precheck(study: StudyConfig, device: str) -> ScalingPlan:
    """UserError (one line) for anything that would stop `study` on `device` later; else the plan
    of its scaling step. `device` is resolved (cpu, cuda or cuda:N), not "auto"."""
    check_device(device)  # cuda:1 without a second GPU: refused here, not after the sweeps
    for net in dict.fromkeys(study.nets + (study.scaling_net,)):
        try:
            model_info(net)
        except UserError as exc:
            what = "scale_net" if net not in study.nets else "nets"
            raise UserError(f"study {study.name!r}: {what}: {exc}") from None
    launcher = "cuda" if device.startswith("cuda") else "cpu"
    slots, why = _slots(launcher)
    fit = tuple(n for n in study.world_sizes if n <= slots)
    if not fit:
        raise UserError(f"study {study.name!r}: world_sizes {', '.join(map(str, study.world_sizes))} "
                        f"all exceed this machine ({why}); give world sizes up to {max(slots, 1)}")
    left = [n for n in study.world_sizes if n not in fit]
    notes = (f"world sizes {', '.join(map(str, left))} skipped: this machine has {why}",) if left else ()
    return ScalingPlan(launcher, fit, notes)
