"""The report of a stored run, with what only this layer may add: the networks counted by
`nnscale.netstats` (torch) beside the seed's table, and prediction rows. `nnscale.report` itself
stays free of torch. Shared by `nnscale report` and the study.
"""

from __future__ import annotations

import re
from pathlib import Path

from nnscale.errors import UserError


def default_report_dir(run: str) -> Path:
    return Path("report-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", run).strip("._") or "run"))


def prediction_rows(obj) -> list | None:
    """Rows of one `nnscale predict --format json` output ({"inputs", "rows"}), the inputs naming
    the configuration copied into each row; or a plain row; None if neither."""
    if isinstance(obj, dict) and isinstance(obj.get("rows"), list):
        inputs = obj.get("inputs") if isinstance(obj.get("inputs"), dict) else {}
        names = {"model": inputs.get("model"), "batch_size": inputs.get("batch_per_gpu"),
                 "precision": inputs.get("precision"), "cluster": inputs.get("cluster"),
                 "cluster_kind": inputs.get("cluster_kind")}
        names = {k: v for k, v in names.items() if v is not None}
        rows = obj["rows"]
        if not all(isinstance(r, dict) for r in rows):
            return None
        # The model's timeline of a one-node row, drawn under the measured step (report.timeline);
        # JSON keys are strings, the study's own dict has ints.
        timelines = obj.get("timelines") if isinstance(obj.get("timelines"), dict) else {}
        timelines = {str(k): v for k, v in timelines.items()}
        out = []
        for r in rows:
            t = timelines.get(str(r.get("gpus")))
            out.append({**names, **r, **({"timeline": t} if t is not None else {})})
        return out
    return [obj] if isinstance(obj, dict) else None


def netstats_rows(measurements) -> list[dict]:
    """The run's networks counted by nnscale, beside the seed's numbers where the seed has them.

    Only the networks the run measured are counted (counting all of the seed's takes seconds), at
    the input size they were measured at. torch is imported here, in the CLI layer: the report
    package never imports it.
    """
    from nnscale.netstats import network_stats
    from nnscale.netstats.paper import COMPARISONS, seed_row

    shapes = {}
    for m in measurements:
        shapes.setdefault(m.workload.model, tuple(m.workload.input_shape))
    rows = []
    for model, shape in shapes.items():
        comp = next((c for c in COMPARISONS if c.model == model), None)
        try:
            stats = network_stats(model, shape)
        except (UserError, ValueError, RuntimeError):
            continue  # a model this install cannot build: its points are still reported
        seed = seed_row(comp.network) if comp else None
        rows.append({
            "network": comp.network if comp else model, "model": model,
            "input": "x".join(map(str, stats.input_shape)),
            "seed_conv_layers": seed.conv_layers if seed else None,
            "conv_layers": stats.conv_layers, "conv_depth": stats.conv_depth,
            "seed_fc_layers": seed.fc_layers if seed else None, "fc_layers": stats.fc_layers,
            "seed_params": seed.params if seed else None, "params": stats.params_total,
            "params_weights": stats.params_weights, "seed_macs": seed.macs if seed else None,
            "macs": stats.macs,
            "note": comp.note if comp else "not in the seed's table",
        })
    return rows


def write_run_report(run: str | None, out: str | Path | None = None, *, db: str | None = None,
                     predictions: list[dict] | None = None, title: str | None = None,
                     netstats: bool = True) -> dict[str, Path]:
    """Build and write the report of `run` (default: the newest) from the store at `db`."""
    from nnscale.report import build_report, write_report
    from nnscale.store import open_store

    with open_store(db, create=False) as store:
        info = store.run(run) if run is not None else store.latest_run()
        if info is None:
            raise UserError(f"{store.url} holds no runs yet; measure one first (nnscale sweep)")
        measurements = store.measurements(info.name)
    report = build_report(measurements, info.environment, predictions=predictions,
                          netstats_rows=netstats_rows(measurements) if netstats else None,
                          title=title or f"Run {info.name}")
    return write_report(report, out if out is not None else default_report_dir(info.name))
