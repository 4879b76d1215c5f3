"""`nnscale results [RUN]`: a stored run's points as a table, CSV or JSON; `--runs` lists the runs."""

from __future__ import annotations

import json
from dataclasses import fields

from nnscale.cli import options
from nnscale.errors import UserError
from nnscale.format import render
from nnscale.measure.progress import display_row
from nnscale.records import MEASURED_STATUSES, Measurement, Workload
from nnscale.stats import knee
from nnscale.store import open_store
from nnscale.store.url import redact_command_line

TABLE = (("model", "model"), ("framework", "framework"), ("mode", "mode"), ("batch", "batch"),
         ("config", "config"),
         ("status", "status"), ("samples_per_s", "img/s"), ("ci", "±CI"), ("step_ms", "step ms"),
         ("p99_ms", "p99 ms"), ("memory", "peak mem"), ("flops", "FLOP/s"), ("mfu", "MFU"),
         ("iters", "iters"), ("error", "note"))
RUNS = (("name", "run"), ("created_utc", "created (UTC)"), ("n_measurements", "points"),
        ("command_line", "command"))
WORKLOAD_KEYS = tuple(f.name for f in fields(Workload))


def add_parser(sub) -> None:
    p = sub.add_parser("results", help="export a stored run (table, CSV or JSON)")
    p.add_argument("run", nargs="?", help="run name (default: the latest run)")
    options.add_store(p)
    options.add_format(p)
    p.add_argument("--runs", action="store_true", help="list the runs instead")
    p.set_defaults(handle=handle)


def flat_rows(measurements: list[Measurement]) -> tuple[list[dict], list[tuple[str, str]]]:
    """One flat dict per point (workload fields, status, every statistic as block.field, error)
    and its columns."""
    flats = [m.stats.flat() for m in measurements]
    stat_keys: dict[str, None] = {}
    for flat in flats:
        stat_keys.update(dict.fromkeys(flat))
    rows = []
    for m, flat in zip(measurements, flats):
        w = m.workload
        row = {k: getattr(w, k) for k in WORKLOAD_KEYS}
        row.update(key=w.key(), status=m.status, error=m.error)
        row.update({k: flat.get(k) for k in stat_keys})
        rows.append(row)
    keys = ["key", *WORKLOAD_KEYS, "status", *stat_keys, "error"]
    return rows, [(k, k) for k in keys]


def knee_lines(measurements: list[Measurement]) -> list[str]:
    groups: dict[tuple, list[Measurement]] = {}
    for m in measurements:
        if m.status in MEASURED_STATUSES and m.stats.throughput.samples_per_s:
            w = m.workload
            key = (w.model, w.engine, w.mode, w.device, w.precision, w.channels_last, w.compile)
            groups.setdefault(key, []).append(m)
    lines = []
    for (model, framework, mode, device, precision, cl, comp), ms in groups.items():
        if len({m.workload.batch_size for m in ms}) < 2:
            continue
        b = knee([m.workload.batch_size for m in ms], [m.stats.throughput.samples_per_s for m in ms])
        label = " ".join([precision] + ["cl"] * cl + ["compile"] * comp)
        who = model if framework == "torch" else f"{model} {framework}"
        lines.append(f"knee {who} {mode} {device} {label}: batch {b} (95 % of the best throughput)")
    return lines


def handle(args) -> int:
    with open_store(args.db, create=False) as store:
        if args.runs:
            rows = [{"name": r.name, "created_utc": r.created_utc[:19], "n_measurements": r.n_measurements,
                     # runs stored before passwords were hidden may still hold one
                     "command_line": redact_command_line(r.command_line)} for r in store.runs()]
            print(render(rows, RUNS, args.format))
            return 0
        name = args.run
        if name is None:
            latest = store.latest_run()
            if latest is None:
                raise UserError(f"{store.url} holds no runs yet; `nnscale sweep MODEL` makes one")
            name = latest.name
        measurements = store.measurements(name)  # UserError listing the runs for an unknown name
    if args.format == "json":
        print(json.dumps({"run": name, "measurements": [m.to_dict() for m in measurements]},
                         indent=2, default=str))
        return 0
    if args.format == "csv":
        rows, columns = flat_rows(measurements)
        print(render(rows, columns, "csv"))
        return 0
    # Grouped by framework (in the order first measured), each group in measured order.
    order = {fw: i for i, fw in enumerate(dict.fromkeys(m.workload.engine for m in measurements))}
    grouped = sorted(measurements, key=lambda m: order[m.workload.engine])
    rows = [dict(display_row(m), model=m.workload.model, framework=m.workload.engine,
                 error=m.error) for m in grouped]
    print(f"run {name}: {len(measurements)} points")
    print(render(rows, TABLE))
    for line in knee_lines(measurements):
        print(line)
    return 0
