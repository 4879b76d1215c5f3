"""What a study runs: the study file (YAML) and the built-in studies, validated at the edge.

A study file lists what to run; every key but `nets` is optional:

    nets: [resnet50, googlenet]
    modes: [inference, training]
    batches: [1, 8, 32]        # or "auto"
    precisions: [fp32, bf16]
    frameworks: [torch, tensorflow, jax, onnxruntime]   # sweeps per framework; default [torch]
    framework_nets: [tf-mnist-convnet]   # the nets the frameworks other than torch run; default all
    world_sizes: [1, 2]
    budget: 10m                # whole study; seconds or 30s/10m/1h
    processes: 3               # fresh worker processes per point (more, up to max_processes, when noisy)
    max_processes: 6
    scale_launches: 3          # launches per world size of the scaling step, interleaved
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from nnscale.distributed.config import DEFAULT_LAUNCHES
from nnscale.errors import UserError
from nnscale.measure.frameworks import FRAMEWORKS
from nnscale.measure.methodology import INTERFERENCE_MAX
from nnscale.records import MODES, PRECISIONS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_s(value: object, what: str = "budget") -> float:
    """30 -> 30.0; '30s' -> 30.0; '10m' -> 600.0; '1h' -> 3600.0. Zero or negative is an error."""
    if isinstance(value, bool):
        raise UserError(f"{what} must be seconds or a duration like 30s/10m/1h, not {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise UserError(f"{what} {value!r} is not a duration: use seconds or 30s/10m/1h")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise UserError(f"{what} must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class StudyConfig:
    """A validated study. Batch lists are per mode; "auto" searches up to the largest that fits."""

    name: str
    nets: tuple[str, ...]
    modes: tuple[str, ...] = MODES
    inference_batches: tuple[int, ...] | str = (1, 2, 4, 8, 16, 32)
    training_batches: tuple[int, ...] | str = (1, 2, 4, 8, 16)
    precisions: tuple[str, ...] = ("fp32",)
    frameworks: tuple[str, ...] = ("torch",)
    # The nets the frameworks other than torch measure (None: all of `nets`): the comparison of
    # frameworks needs one network in common, not every network in every framework.
    framework_nets: tuple[str, ...] | None = None
    # Built-in studies run the frameworks that are installed and say which were left out; a study
    # file's `frameworks` are required (not installed: an error before anything runs).
    skip_missing_frameworks: bool = False
    world_sizes: tuple[int, ...] = (1, 2)
    scale_net: str | None = None  # the net of the scaling step; the first net when None
    scale_batch_per_worker: int = 8
    # Launches per world size of the scaling step, in interleaved rounds (distributed/launch_loop.py):
    # a speedup is a ratio of two launches, and launches a minute apart differ on a shared machine.
    scale_launches: int = DEFAULT_LAUNCHES
    budget_s: float = 600.0
    point_budget_s: float | None = None  # per point; None: shared out of the whole budget
    target_rel_ci: float = 0.02
    # Each point in `processes` fresh workers, more up to `max_processes` while the study has time
    # and the interval across them is wider than the target (docs/methodology.md).
    processes: int = 3
    max_processes: int = 6
    # On a CPU, measure the fastest precision it runs natively instead of `precisions` (bf16 with
    # AMX or AVX-512 BF16, else fp32): the built-in quick study, for the machine at hand.
    cpu_fastest_precision: bool = False
    interference_max: float = INTERFERENCE_MAX  # warn above this share of the machine (nnscale run)
    predict_gpus: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    # Per-net batch lists that replace the study's for that net: {net: {mode: (batches)}}.
    net_batches: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def batches_for(self, net: str, mode: str) -> tuple[int, ...] | str:
        own = self.net_batches.get(net, {}).get(mode)
        if own is not None:
            return own
        return self.inference_batches if mode == "inference" else self.training_batches

    @property
    def scaling_net(self) -> str:
        return self.scale_net or self.nets[0]

    def nets_for(self, framework: str) -> tuple[str, ...]:
        """The nets `framework` sweeps: all for torch, `framework_nets` (when set) for the others."""
        if framework == "torch" or self.framework_nets is None:
            return self.nets
        return tuple(n for n in self.nets if n in self.framework_nets)


# `quick`: the seed's own study for the machine at hand, within 10 minutes of study time on 2 CPU
# cores. The three networks of the seed's throughput-against-batch charts — AlexNet, Inception v1
# and ResNet-50, torchvision's variants (`alexnet`, `googlenet`, `resnet50`; the zoo's `-original`
# and `-v1` paper variants are the `paper` study's) — in inference and training against batch size,
# plus the seed's four framework nets at one batch each. Sizing on the 2-core AVX2 development VM
# (bare loops, issue 12): ResNet-50 training batch 8 ≈ 4.2 img/s (1.9 s a step), inference ≈ 12.4
# img/s, GoogLeNet training ≈ 8.9 img/s, AlexNet training batch 16 ≈ 23 img/s; every point costs 3
# fresh workers (~5 s each to import torch). So few batches per network, and the planner
# (`nnscale.study.plan`) drops the costliest batch sizes first when the machine is slower.
QUICK = StudyConfig(
    name="quick",
    nets=("alexnet", "googlenet", "resnet50",
          "caffe-conv", "tf-mnist-convnet", "matconvnet-lenet", "pytorch-mnist-net"),
    inference_batches=(1, 4, 16),
    training_batches=(2, 8),
    # The seed's four framework nets (Caffe's convolution, the TensorFlow and PyTorch MNIST nets,
    # MatConvNet's LeNet) need no batch sweep: one batch each, inference; the net every framework
    # runs (TensorFlow's) in training too. An empty tuple: that mode is not measured for the net.
    net_batches={"caffe-conv": {"inference": (64,), "training": ()},
                 "matconvnet-lenet": {"inference": (64,), "training": ()},
                 "pytorch-mnist-net": {"inference": (64,), "training": ()},
                 "tf-mnist-convnet": {"inference": (64,), "training": (64,)}},
    world_sizes=(1, 2),
    # The seed opens by comparing frameworks: TensorFlow's own MNIST net in each framework that is
    # installed (`make run` installs them all), one network in common so the comparison is cheap.
    frameworks=FRAMEWORKS,
    framework_nets=("tf-mnist-convnet",),
    skip_missing_frameworks=True,
    scale_net="pytorch-mnist-net",
    scale_batch_per_worker=64,
    budget_s=600.0,
    # The target applies to the interval across fresh processes, and on the 2-core development VM
    # fresh processes of one point differ a lot: 18 processes of ResNet-18 inference batch 16 ran
    # 20.1-27.6 img/s (sd 9.7 %, quiet machine; docs/benchmarks.md). With 3-6 processes an honest
    # 95 % interval is then ±10-25 %; ±15 % is what most points can reach here, and a point that
    # cannot is flagged, never hidden. On a steadier machine give a study file a tighter target.
    target_rel_ci=0.15,
    # With workers forked from pre-imported interpreters (measure/forkserver.py) a process costs
    # its measurement, not a 6 s start-up: 4 per point (t(3) = 3.18 instead of t(2) = 4.30 in the
    # interval), and up to 10 for a noisy point while the study is ahead of its plan.
    processes=4,
    max_processes=10,
    cpu_fastest_precision=True,
)
# `paper`: the full study for a GPU machine, as the seed ran it (batch sweeps to the memory limit,
# mixed precision, all the GPUs present).
PAPER = StudyConfig(
    name="paper",
    nets=("alexnet-original", "alexnet", "inception-v1-original", "googlenet", "resnet50-v1",
          "resnet50", "resnet152-v1", "resnet152"),
    inference_batches="auto",
    training_batches="auto",
    precisions=("fp32", "tf32", "bf16", "fp16"),
    world_sizes=(1, 2, 4, 8),
    scale_net="resnet152-v1",
    scale_batch_per_worker=32,
    budget_s=4 * 3600.0,
)
BUILTIN = {"quick": QUICK, "paper": PAPER}

_KEYS = {"nets", "modes", "batches", "inference_batches", "training_batches", "precisions",
         "frameworks", "framework_nets", "world_sizes", "scale_net", "scale_batch_per_worker", "budget",
         "point_budget", "target_rel_ci", "predict_gpus", "name", "processes", "max_processes",
         "scale_launches"}


def _list(data: dict, key: str, kind: type, where: str) -> tuple:
    value = data[key]
    if isinstance(value, kind) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: '{key}' must be a non-empty list of {kind.__name__}, got {value!r}")
    for item in value:
        if not isinstance(item, kind) or isinstance(item, bool):
            raise UserError(f"{where}: '{key}' must list {kind.__name__} values, got {item!r}")
    return tuple(value)


def _choices(values: tuple, allowed: tuple, key: str, where: str) -> tuple:
    for v in values:
        if v not in allowed:
            raise UserError(f"{where}: unknown {key} value {v!r}; accepted: {', '.join(allowed)}")
    return values


def _batches(data: dict, key: str, where: str) -> tuple[int, ...] | str:
    if data[key] == "auto":
        return "auto"
    values = _list(data, key, int, where)
    if any(b <= 0 for b in values):
        raise UserError(f"{where}: '{key}' must be positive integers or \"auto\", got {list(values)}")
    return values


def study_from_dict(data: object, where: str, check_net=None) -> StudyConfig:
    """Validate a parsed study file. `check_net(name)` raises UserError for an unknown net."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: a study file is a mapping of keys (nets, modes, …), not {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; accepted: {', '.join(sorted(_KEYS))}")
    if "nets" not in data:
        raise UserError(f"{where}: 'nets' is required (a list of zoo names)")
    kw: dict = {"name": str(data.get("name") or Path(where).stem)}
    kw["nets"] = _list(data, "nets", str, where)
    if check_net is not None:
        for net in kw["nets"]:
            check_net(net)
    if "modes" in data:
        kw["modes"] = _choices(_list(data, "modes", str, where), MODES, "mode", where)
    if "batches" in data:
        kw["inference_batches"] = kw["training_batches"] = _batches(data, "batches", where)
    for key in ("inference_batches", "training_batches"):
        if key in data:
            kw[key] = _batches(data, key, where)
    if "precisions" in data:
        kw["precisions"] = _choices(_list(data, "precisions", str, where), PRECISIONS, "precision", where)
    if "frameworks" in data:
        kw["frameworks"] = _choices(_list(data, "frameworks", str, where), FRAMEWORKS, "framework", where)
    if "framework_nets" in data:
        kw["framework_nets"] = _list(data, "framework_nets", str, where)
        outside = [n for n in kw["framework_nets"] if n not in kw["nets"]]
        if outside:
            raise UserError(f"{where}: framework_nets {outside[0]!r} is not in nets; accepted: "
                            f"{', '.join(kw['nets'])}")
    for key in ("world_sizes", "predict_gpus"):
        if key in data:
            values = _list(data, key, int, where)
            if any(v <= 0 for v in values):
                raise UserError(f"{where}: '{key}' must be positive integers, got {list(values)}")
            kw[key] = values
    if "scale_net" in data:
        kw["scale_net"] = _list(data, "scale_net", str, where)[0]
    if "scale_batch_per_worker" in data:
        value = data["scale_batch_per_worker"]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UserError(f"{where}: 'scale_batch_per_worker' must be a positive integer, got {value!r}")
        kw["scale_batch_per_worker"] = value
    for key in ("processes", "max_processes", "scale_launches"):
        if key in data:
            value = data[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"{where}: '{key}' must be an integer >= 1, got {value!r}")
            kw[key] = value
    if "processes" in kw and "max_processes" not in kw:
        kw["max_processes"] = max(2 * kw["processes"], 1)
    if kw.get("max_processes", 6) < kw.get("processes", 3):
        raise UserError(f"{where}: 'max_processes' ({kw.get('max_processes', 6)}) must be at least "
                        f"'processes' ({kw.get('processes', 3)})")
    if "budget" in data:
        kw["budget_s"] = parse_duration_s(data["budget"], f"{where}: budget")
    if "point_budget" in data:
        kw["point_budget_s"] = parse_duration_s(data["point_budget"], f"{where}: point_budget")
    if "target_rel_ci" in data:
        value = data["target_rel_ci"]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < 1:
            raise UserError(f"{where}: 'target_rel_ci' must be a fraction in (0, 1), e.g. 0.02, got {value!r}")
        kw["target_rel_ci"] = float(value)
    return StudyConfig(**kw)


def load_study(spec: str, check_net=None) -> StudyConfig:
    """`quick`, `paper`, or the path of a YAML study file."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"study {spec!r} is neither a built-in ({', '.join(BUILTIN)}) nor a readable file")
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{spec}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{spec}: cannot read the study file: {exc}") from None
    return study_from_dict(data, spec, check_net)


__all__ = ["BUILTIN", "PAPER", "QUICK", "StudyConfig", "load_study", "parse_duration_s", "study_from_dict"]
