"""Predicted rows, as `predict` hands them over: plain dicts, read tolerantly.

Keys read (all optional but `gpus` or `nodes`): those of `predict.model.PredictionRow.to_dict()` —
nodes, gpus, samples_per_s, speedup, efficiency, compute_ms, comm_ms (all-reduce end to end),
exposed_ms (the part not hidden behind backward), time_to_train_s, limited_by — plus what the caller
adds to say which configuration was predicted: model, batch_size (per worker), precision, and which
cluster: `cluster` (its name in words: which workers, how many per node, which links) and
`cluster_kind` ("measured": workers like the run's own; "catalogue": devices from the catalogue,
never compared with the run's points), and `timeline` (report.timeline). Also
accepted: world_size or nodes × gpus_per_node for gpus, time_to_train_min, comm_exposed_ms,
limiting. Unknown keys are kept in report.json and ignored here.

`check_rows` says, before anything is drawn, what is wrong with a row read from a file: a worker
count that is not a whole number >= 1 (`gpus` 0.5, `world_size` 0 divided by zero), a number that
is a list or a string, a name that is not a string.
"""

from __future__ import annotations

import math
from collections import defaultdict

from nnscale.errors import UserError
from nnscale.report.points import num

# What each key read here may hold (None/null is always allowed: the key is then absent).
_COUNTS = ("gpus", "world_size", "nodes", "gpus_per_node", "batch_size", "global_batch", "buckets")
_AMOUNTS = ("samples_per_s", "speedup", "efficiency", "time_to_train_min", "time_to_train_s",
            "compute_ms", "comm_ms", "exposed_ms", "comm_exposed_ms", "step_ms", "overhead_ms")
_NAMES = ("model", "precision", "limiting", "limited_by", "cluster", "cluster_kind")


def _bad(where: str, key: str, value, accepted: str) -> UserError:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return UserError(f"{where}: {key} = {shown} is not {accepted}")


def check_rows(rows: list, source: str = "predictions") -> None:
    """UserError (one line: which row, which key, what is accepted) for the first bad row."""
    for i, r in enumerate(rows):
        where = f"{source}: row {i + 1}"
        if not isinstance(r, dict):
            raise UserError(f"{where} is a {type(r).__name__}, not an object of predicted values")
        for k in _COUNTS:
            v = r.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v != int(v) or v < 1):
                raise _bad(where, k, v, "a whole number >= 1")
        for k in _AMOUNTS:
            v = r.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(v) or v < 0):
                raise _bad(where, k, v, "a finite number >= 0 (or null)")
        for k in _NAMES:
            v = r.get(k)
            if v is not None and not isinstance(v, str):
                raise _bad(where, k, v, "a string")
        if all(r.get(k) is None for k in ("gpus", "world_size", "nodes")):
            raise UserError(f"{where} has no worker count: give gpus, world_size or nodes "
                            "(whole numbers >= 1)")


def normalize(rows: list[dict] | None) -> list[dict]:
    """Rows with `gpus` filled in and numbers as floats; rows with no worker count are dropped."""
    out = []
    for r in rows or ():
        r = dict(r)
        gpus = num(r.get("gpus")) or num(r.get("world_size"))
        nodes = num(r.get("nodes"))
        if gpus is None and nodes is not None:
            gpus = nodes * (num(r.get("gpus_per_node")) or 1)
        if gpus is None or gpus < 1:  # no worker count (check_rows refuses these from a file)
            continue
        r["gpus"] = int(gpus)
        r["nodes"] = int(nodes) if nodes is not None else None
        for k in ("samples_per_s", "speedup", "efficiency", "time_to_train_min", "compute_ms",
                  "comm_ms", "exposed_ms"):
            r[k] = num(r.get(k))
        if r["exposed_ms"] is None:
            r["exposed_ms"] = num(r.get("comm_exposed_ms"))
        seconds = num(r.get("time_to_train_s"))
        if r["time_to_train_min"] is None and seconds is not None:
            r["time_to_train_min"] = seconds / 60.0
        r["limiting"] = r.get("limiting") or r.get("limited_by")
        if r["efficiency"] is None and r["speedup"] is not None:
            r["efficiency"] = r["speedup"] / r["gpus"]
        out.append(r)
    return out


def key(r: dict) -> tuple:
    """(model, batch per worker, precision, cluster): rows of different clusters are different
    series, never one curve (a CPU run's workers and a catalogue GPU cluster of the same model)."""
    bs = r.get("batch_size")
    cluster = r.get("cluster") if isinstance(r.get("cluster"), str) else None
    return (str(r.get("model", "?")), int(bs) if num(bs) is not None else None,
            r.get("precision"), cluster)


def measured_like(r: dict) -> bool:
    """Does the row describe workers like the run's own (so that a measured point compares)? Rows
    from a catalogue cluster (cluster_kind "catalogue") never do."""
    return r.get("cluster_kind") != "catalogue"


def unit(r: dict) -> str:
    """What the row's worker count counts: "workers" for workers like a run's own (their kind is
    in the row's cluster name), else GPUs (a catalogue cluster, or a row that does not say)."""
    return "workers" if r.get("cluster_kind") == "measured" else "GPUs"


def pred_series(rows: list[dict]) -> dict[tuple, list[dict]]:
    """(model, batch per worker, precision) -> that configuration's rows, by GPU count."""
    groups = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {k: sorted(v, key=lambda r: r["gpus"]) for k, v in groups.items()}


def series_label(k: tuple) -> str:
    model, batch, precision, *rest = k
    cluster = rest[0] if rest else None
    name = " ".join(str(p) for p in (model, f"b{batch}" if batch is not None else None, precision)
                    if p is not None)
    if cluster:  # its first clause says which workers: "8 a100 GPUs per node", "2 workers like ..."
        name += f" · {cluster.split(',')[0].split(' (')[0]}"
    return name
