"""Predicted rows, as `predict` hands them over: plain dicts, read tolerantly.

Keys read (all optional but `gpus` or `nodes`): those of `predict.model.PredictionRow.to_dict()` —
nodes, gpus, samples_per_s, speedup, efficiency, compute_ms, comm_ms (all-reduce end to end),
exposed_ms (the part not hidden behind backward), time_to_train_s, limited_by — plus what the caller
adds to say which configuration was predicted: model, batch_size (per worker), precision. Also
accepted: world_size or nodes × gpus_per_node for gpus, time_to_train_min, comm_exposed_ms,
limiting. Unknown keys are kept in report.json and ignored here.
"""

from __future__ import annotations

import math
from collections import defaultdict


def _number(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def normalize(rows: list[dict] | None) -> list[dict]:
    """Rows with `gpus` filled in and numbers as floats; rows with no worker count are dropped."""
    out = []
    for r in rows or ():
        r = dict(r)
        gpus = _number(r.get("gpus")) or _number(r.get("world_size"))
        nodes = _number(r.get("nodes"))
        if gpus is None and nodes is not None:
            gpus = nodes * (_number(r.get("gpus_per_node")) or 1)
        if gpus is None:
            continue
        r["gpus"] = int(gpus)
        r["nodes"] = int(nodes) if nodes is not None else None
        for k in ("samples_per_s", "speedup", "efficiency", "time_to_train_min", "compute_ms",
                  "comm_ms", "exposed_ms"):
            r[k] = _number(r.get(k))
        if r["exposed_ms"] is None:
            r["exposed_ms"] = _number(r.get("comm_exposed_ms"))
        seconds = _number(r.get("time_to_train_s"))
        if r["time_to_train_min"] is None and seconds is not None:
            r["time_to_train_min"] = seconds / 60.0
        r["limiting"] = r.get("limiting") or r.get("limited_by")
        if r["efficiency"] is None and r["speedup"] is not None:
            r["efficiency"] = r["speedup"] / r["gpus"]
        out.append(r)
    return out


def key(r: dict) -> tuple:
    bs = r.get("batch_size")
    return (str(r.get("model", "?")), int(bs) if _number(bs) is not None else None,
            r.get("precision"))


def pred_series(rows: list[dict]) -> dict[tuple, list[dict]]:
    """(model, batch per worker, precision) -> that configuration's rows, by GPU count."""
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {k: sorted(v, key=lambda r: r["gpus"]) for k, v in groups.items()}


def series_label(k: tuple) -> str:
    model, batch, precision = k
    return " ".join(str(p) for p in (model, f"b{batch}" if batch is not None else None, precision)
                    if p is not None)
