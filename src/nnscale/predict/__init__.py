"""The performance model: predict data-parallel training speed on hardware you do not have.

Pure functions over numbers and stored records (never torch): the caller passes each network's
parameters and FLOPs (`nnscale.netstats` counts them). See docs/prediction.md.

- `catalogue`: devices and links with sources (`load_catalogue`, YAML, user-extendable).
- `comm`: alpha-beta all-reduce costs (ring, tree, hierarchical).
- `profile`: `ModelProfile`, `Layer` (a network's counts, its measured step and sweep).
- `buckets`: DDP's buckets and Horovod's fusion cycle.
- `terms`: contention, synchronisation, framework and launch costs (`Terms`, `CATALOGUE`, `NONE`).
- `model`: `Cluster`, `ddp_step_time` (the step with every term), `predict` (weak or strong scaling).
- `stateff`: statistical efficiency, epochs against the global batch (McCandlish et al. 2018).
- `points`: the measured points of a run (`extract_points`), each with its link class and cap.
- `calibrate`: `fit` per-link alpha and B, a cap efficiency, overlap and overhead (scipy least squares).
- `validate`: `validate_leave_one_out` over a run's points.
- `published`: published scaling results, the inputs that reproduce them, the error band.
"""

from nnscale.predict import stateff, terms
from nnscale.predict.calibrate import CommParams, FitResult, extract_points, fit
from nnscale.predict.catalogue import Catalogue, Device, Link, load_catalogue
from nnscale.predict.comm import ALGORITHMS, allreduce_time_s, cluster_allreduce
from nnscale.predict.model import (
    DDP,
    HOROVOD,
    Bucketing,
    Cluster,
    Layer,
    ModelProfile,
    PredictionRow,
    StepBreakdown,
    ddp_step_time,
    predict,
)
from nnscale.predict.leave_one_out import Validation, validate_leave_one_out

__all__ = [
    "ALGORITHMS",
    "DDP",
    "HOROVOD",
    "Bucketing",
    "Catalogue",
    "Cluster",
    "CommParams",
    "Device",
    "FitResult",
    "Layer",
    "Link",
    "ModelProfile",
    "PredictionRow",
    "StepBreakdown",
    "Validation",
    "allreduce_time_s",
    "cluster_allreduce",
    "ddp_step_time",
    "extract_points",
    "fit",
    "load_catalogue",
    "predict",
    "stateff",
    "terms",
    "validate_leave_one_out",
]
